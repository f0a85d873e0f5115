#!/usr/bin/env python3
"""What diarization adds to a transcription through the server: the same
file posted to /v1/transcribe with and without diarize=true, alternately,
REPEAT times each; prints min/median/max wall seconds of both and the
median added time as a fraction of the audio's duration.

    glagol serve --listen 127.0.0.1:8765 --preload whisper-base
    scripts/bench/diarization_cost.py http://127.0.0.1:8765 ../shared/fixtures/diarization/sample.wav [REPEAT] [QUERY]

QUERY defaults to vad=true&language=en. The first diarized request, which
loads the diarization models, is a warm-up and not counted.
"""
import statistics
import sys
import time
import urllib.request
import wave

base, path = sys.argv[1], sys.argv[2]
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
query = sys.argv[4] if len(sys.argv) > 4 else "vad=true&language=en"
body = open(path, "rb").read()
with wave.open(path) as w:
    seconds = w.getnframes() / w.getframerate()


def post(extra):
    url = f"{base}/v1/transcribe?{query}{extra}&format=json"
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")) as r:
        assert r.status == 200, r.status
        r.read()
    return time.perf_counter() - t0


post("&diarize=true")
plain, diarized = [], []
for _ in range(repeat):
    plain.append(post(""))
    diarized.append(post("&diarize=true"))
show = lambda xs: f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f} s"
added = statistics.median(diarized) - statistics.median(plain)
print(f"{path}: {seconds:.1f} s of audio, {repeat} runs each (min / median / max)")
print(f"  without diarization: {show(plain)}")
print(f"  with diarization:    {show(diarized)}")
print(f"  added: {added:.2f} s = {added / seconds:.3f} x the audio's duration")
