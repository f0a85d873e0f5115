"""The unmodified official `openai` package against a running glagol.

    python3 openai_client.py BASE_URL JFK_WAV FRENCH_WAV
"""
import sys

import openai
from openai import OpenAI

base, jfk, french = sys.argv[1:4]
client = OpenAI(base_url=base, api_key="unused")
phrase = "ask not what your country can do for you"


def norm(s):
    return "".join(c for c in s.lower() if c.isalnum() or c == " ")


with open(jfk, "rb") as f:
    r = client.audio.transcriptions.create(model="whisper-1", file=f, language="en")
assert phrase in norm(r.text), r.text

for fmt, check in [("text", "ask not"), ("srt", " --> "), ("vtt", "WEBVTT")]:
    with open(jfk, "rb") as f:
        r = client.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt)
    assert check in r, (fmt, r)

with open(jfk, "rb") as f:
    r = client.audio.transcriptions.create(
        model="whisper-1", file=f, response_format="verbose_json",
        timestamp_granularities=["word", "segment"])
assert r.language == "english", r.language
assert r.duration > 10.5
assert len(r.words) > 15 and r.words[0].start <= r.words[-1].start
assert len(r.segments) >= 1 and r.segments[0].end > r.segments[0].start

with open(jfk, "rb") as f:
    r = client.audio.transcriptions.create(
        model="whisper-1", file=f, response_format="verbose_json", timestamp_granularities=["word"])
assert len(r.words) > 15

with open(french, "rb") as f:
    r = client.audio.translations.create(model="whisper-1", file=f)
assert r.text.strip() and r.text.isascii(), r.text

with open(jfk, "rb") as f:
    stream = client.audio.transcriptions.create(model="whisper-1", file=f, stream=True, language="en")
    deltas, done = "", None
    for event in stream:
        if event.type == "transcript.text.delta":
            deltas += event.delta
        elif event.type == "transcript.text.done":
            done = event.text
assert done is not None and deltas == done and phrase in norm(done), (deltas, done)

try:
    client.audio.transcriptions.create(model="no-such-model", file=("x.wav", b"RIFF"))
    raise SystemExit("expected an error")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", (e.code, e)

try:
    client.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"not audio at all"))
    raise SystemExit("expected an error")
except openai.BadRequestError as e:
    assert e.code == "not_audio", (e.code, e)

print("ALL OK")
