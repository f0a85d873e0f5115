#!/usr/bin/env python3
"""Long-audio accuracy: glagol's Whisper path against faster-whisper, with the noise measured.

    scripts/bench/long_audio_wer.py MANIFEST.json [--seconds 300] [--seeds 0,1,2]
        [--threads 2] [--language ru] [--glagol target/release/glagol]
        [--model NAME_OR_PATH ...] [--compute-types float32,int8,float32-nocond]
        [--baseline "faster-whisper float32"] [--runs 2]

Builds one long recording per seed from the manifest's 16 kHz mono clips: seed 0 cycles the
clips in order with 1 s of silence between (what whisper_vs_faster_whisper.py --long
measures); any other seed shuffles each cycle and draws each pause from 0.5-2.0 s. glagol
transcribes with `glagol transcribe`, faster-whisper in-process with ../shared/tools/faster_whisper_baseline.py's model (the same Whisper base
weights) and settings; a compute type ending in `-nocond` turns off faster-whisper's
conditioning on the previous window's text. Each system transcribes each recording --runs
times in a row: glagol's runs must agree (its decoding is reproducible); faster-whisper's
may not, since its temperature fallback samples from a generator whose state carries over
from one transcription to the next.

A long recording built from few clips says little by its WER alone: one word decoded
differently in every cycle moves it by a point or more. So each hypothesis is aligned
to the whole reference, every error is charged to the clip instance whose reference
words it falls on (an insertion to the word before it), and the difference of each
system to the baseline is reported with a 95 % paired-bootstrap interval over clip
instances (all recordings pooled). An interval that contains 0 is a difference this
material cannot tell from noise; the per-clip table shows where the errors are.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("GLAGOL_TEST_ASSETS", os.path.join(os.path.dirname(ROOT), "shared"))
sys.path.insert(0, HERE)
from whisper_vs_faster_whisper import ensure_faster_whisper  # noqa: E402
sys.path.insert(0, os.path.join(SHARED, "tools"))
from faster_whisper_baseline import assemble_model, read_wav  # noqa: E402


def words(s):
    return re.sub(r"[^\w\s]|_", " ", s.lower().replace("ё", "е")).split()


def build(manifest, seconds, seed, out_dir):
    """A recording of >= seconds and its clip instances: [(clip index, reference words)]."""
    base = os.path.dirname(os.path.abspath(manifest))
    entries = json.load(open(manifest))
    clips = []
    for e in entries:
        with wave.open(os.path.join(base, e["filename"])) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2), e["filename"]
            clips.append(w.readframes(w.getnframes()))
    rng = random.Random(seed)
    pcm, instances = bytearray(), []
    while len(pcm) < seconds * 32000:
        order = list(range(len(entries)))
        if seed:
            rng.shuffle(order)
        for i in order:
            pcm += clips[i]
            pause = 1.0 if seed == 0 else rng.uniform(0.5, 2.0)
            pcm += bytes(2 * int(pause * 16000))
            instances.append((i, words(entries[i].get("reference", ""))))
    path = os.path.join(out_dir, f"long_{seed}.wav")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(pcm))
    return path, instances, len(pcm) / 32000


def errors_per_instance(instances, hyp):
    """Word errors charged to each clip instance, from one alignment of hyp to all references."""
    ref, owner = [], []
    for k, (_, ws) in enumerate(instances):
        ref += ws
        owner += [k] * len(ws)
    n, m = len(ref), len(hyp)
    # Full table for the backtrace; ~600 x 600 words is small.
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        row, prev, x = d[i], d[i - 1], ref[i - 1]
        row[0] = i
        for j in range(1, m + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != hyp[j - 1]))
    errs = [0] * len(instances)
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            errs[owner[i - 1]] += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            errs[owner[i - 1]] += 1
            i -= 1
        else:
            errs[owner[max(i - 1, 0)]] += 1
            j -= 1
    assert sum(errs) == d[n][m]
    return errs


def transcribe(system, path, a):
    kind, name = system
    if kind == "glagol":
        cmd = [a.glagol, "transcribe", path, "--model", name, "--threads", str(a.threads), "-f", "txt"]
        if a.language:
            cmd += ["--language", a.language]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return " ".join(seg.text.strip() for seg in faster_whisper(name, a).transcribe(
        read_wav(path), language=a.language, beam_size=1, temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        vad_filter=False, condition_on_previous_text=not name.endswith("-nocond"))[0])


_fw_models = {}


def faster_whisper(name, a):
    """The baseline tool's model and settings (beam 1, temperature fallback, no VAD), in-process."""
    compute_type = name.removesuffix("-nocond")
    if compute_type not in _fw_models:
        from faster_whisper import WhisperModel
        model_dir = os.path.expanduser("~/.cache/glagol-bench/faster-whisper-base")
        _fw_models[compute_type] = WhisperModel(assemble_model(model_dir), device="cpu",
                                                compute_type=compute_type, cpu_threads=a.threads, num_workers=1)
    return _fw_models[compute_type]


def interval(diffs, total, rounds=4000):
    """95 % paired-bootstrap interval of sum(diffs)/total, resampling instances."""
    rng = random.Random(12345)
    k = len(diffs)
    stats = []
    for _ in range(rounds):
        picks = [rng.randrange(k) for _ in range(k)]
        stats.append(100 * sum(diffs[p] for p in picks) / sum(total[p] for p in picks))
    stats.sort()
    return stats[int(0.025 * rounds)], stats[int(0.975 * rounds)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--language")
    ap.add_argument("--glagol", default=os.path.join(ROOT, "target/release/glagol"))
    ap.add_argument("--model", action="append")
    ap.add_argument("--compute-types", default="float32,int8")
    ap.add_argument("--baseline", default="faster-whisper float32",
                    help="system(s) to take differences to, comma-separated labels")
    ap.add_argument("--runs", type=int, default=2,
                    help="transcriptions of each recording by each system, one after another")
    a = ap.parse_args()
    ensure_faster_whisper()
    systems = [("glagol", m) for m in (a.model or [os.path.join(SHARED, "models/ggml-base.bin")])]
    systems += [("faster-whisper", ct) for ct in a.compute_types.split(",") if ct]
    label = {s: (f"glagol {os.path.basename(s[1])}" if s[0] == "glagol" else f"faster-whisper {s[1]}")
             for s in systems}
    out_dir = tempfile.mkdtemp(prefix="glagol-longwer-")

    pooled = {s: [] for s in systems}  # errors per clip instance, over every recording and run
    sizes, clip_of = [], []
    for seed in (int(x) for x in a.seeds.split(",")):
        path, instances, secs = build(a.manifest, a.seconds, seed, out_dir)
        n = sum(len(ws) for _, ws in instances)
        line = [f"seed {seed}: {secs:.0f} s, {len(instances)} clips, {n} words;"]
        for s in systems:
            wers = []
            for _ in range(a.runs):
                errs = errors_per_instance(instances, words(transcribe(s, path, a)))
                pooled[s] += errs
                wers.append(f"{100 * sum(errs) / n:.1f}")
            line.append(f"{label[s]} {'/'.join(wers)}")
        sizes += [len(ws) for _, ws in instances] * a.runs
        clip_of += [i for i, _ in instances] * a.runs
        print("  ".join(line), flush=True)

    total = sum(sizes)
    for baseline in a.baseline.split(","):
        base = next(s for s in systems if label[s] == baseline)
        print(f"\npooled over {len(sizes)} clip instances (recordings x runs), {total} words; "
              f"difference to {baseline}, 95 % interval:")
        for s in systems:
            wer = 100 * sum(pooled[s]) / total
            diffs = [e - b for e, b in zip(pooled[s], pooled[base])]
            lo, hi = interval(diffs, sizes)
            print(f"  {label[s]:<36} WER {wer:5.1f}  diff {wer - 100 * sum(pooled[base]) / total:+5.1f}"
                  f"  [{lo:+.1f}, {hi:+.1f}]")

    clips = sorted(set(clip_of))
    print("\nerrors per clip (all its instances and runs), words per instance in brackets:")
    print(f"  {'clip':<6}" + "".join(f"{label[s][:22]:>24}" for s in systems))
    for c in clips:
        idx = [k for k, i in enumerate(clip_of) if i == c]
        row = "".join(f"{sum(pooled[s][k] for k in idx):>24}" for s in systems)
        print(f"  {c:<2}[{sizes[idx[0]]:>2}]{row}")


if __name__ == "__main__":
    main()
