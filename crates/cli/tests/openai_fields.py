"""The transcription fields OpenAI added in 2025-2026, through the unmodified
official `openai` client against a running glagol (Whisper base).

    python3 openai_fields.py BASE_URL JFK_WAV GERMAN_WAV RUSSIAN_WAV
"""
import sys

import openai
from openai import OpenAI

base, jfk, german, russian = sys.argv[1:5]
client = OpenAI(base_url=base, api_key="unused")
phrase = "ask not what your country can do for you"


def norm(s):
    return "".join(c for c in s.lower() if c.isalnum() or c == " ")


def transcribe(path, **kw):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(file=f, **kw)


# languages[]: detection chooses among them, and the answer says which.
r = transcribe(german, model="gpt-transcribe", languages=["de", "en"])
assert [l.code for l in r.languages] == ["de"], r
r = transcribe(german, model="whisper-1", languages=["de", "en"], response_format="verbose_json")
assert r.language == "german", r.language
# A German clip limited to English and French is not reported as German.
r = transcribe(german, model="whisper-1", languages=["en", "fr"])
assert [l.code for l in r.languages] in (["en"], ["fr"]), r.languages
r = transcribe(jfk, model="whisper-1")
assert [l.code for l in r.languages] == ["en"], r.languages
try:
    transcribe(jfk, model="whisper-1", languages=["xx", "en"])
    raise SystemExit("expected an error")
except openai.BadRequestError as e:
    assert e.code == "unsupported_language", (e.code, e)

# keywords[] steer Whisper's prompt; the speech is still what it was.
r = transcribe(jfk, model="whisper-1", language="en", keywords=["Americans", "country"])
assert phrase in norm(r.text), r.text

# chunking_strategy in each encoding: the plain string, the client's
# bracketed object, and a JSON string. A threshold no window reaches
# leaves no speech at all, so the settings do reach the detector.
for strategy in ["auto", {"type": "server_vad", "threshold": 0.4, "silence_duration_ms": 500,
                          "prefix_padding_ms": 200}, '{"type": "server_vad"}']:
    r = transcribe(jfk, model="whisper-1", language="en", chunking_strategy=strategy)
    assert phrase in norm(r.text), (strategy, r.text)
r = transcribe(jfk, model="whisper-1", language="en",
               chunking_strategy={"type": "server_vad", "threshold": 1.0})
assert r.text.strip() == "", r.text
for strategy in ["manual", {"type": "semantic_vad"}, {"type": "server_vad", "threshold": 3}]:
    try:
        transcribe(jfk, model="whisper-1", chunking_strategy=strategy)
        raise SystemExit(f"expected an error for {strategy}")
    except openai.BadRequestError as e:
        assert e.code == "invalid_chunking_strategy", (e.code, e)

# Without the diarization models installed, asking for speakers says so by
# name; a known speaker's clip that is not audio is refused first.
for kw in [dict(model="gpt-4o-transcribe-diarize"),
           dict(model="whisper-1", response_format="diarized_json")]:
    try:
        transcribe(jfk, **kw)
        raise SystemExit(f"expected an error for {kw}")
    except openai.NotFoundError as e:
        assert e.code == "diarization_model_not_found", (e.code, e)
        assert "campplus-zh-en" in e.message, e.message
try:
    transcribe(jfk, model="whisper-1", known_speaker_names=["agent"],
               known_speaker_references=["data:audio/wav;base64,UklGRg=="])
    raise SystemExit("expected an error for a bad known speaker")
except openai.BadRequestError as e:
    assert e.code == "invalid_known_speaker", (e.code, e)

# include[]=logprobs: every token of the text, each with its bytes and a
# log-probability, from both engines.
def consistent(text, logprobs):
    assert logprobs, text
    joined = "".join(t.token for t in logprobs)
    assert joined.split() == text.split(), (joined, text)
    # The SDK types `bytes` as floats in json responses, ints in stream events.
    assert bytes(int(b) for t in logprobs for b in t.bytes).decode() == joined
    assert all(t.logprob <= 0 for t in logprobs), logprobs


r = transcribe(jfk, model="whisper-1", language="en", include=["logprobs"])
consistent(r.text, r.logprobs)
assert transcribe(jfk, model="whisper-1", language="en").logprobs is None
r = transcribe(russian, model="gigaam-tiny", include=["logprobs"])
consistent(r.text, r.logprobs)
with open(jfk, "rb") as f:
    stream = client.audio.transcriptions.create(
        model="whisper-1", file=f, stream=True, language="en", include=["logprobs"])
    events = list(stream)
deltas = [e for e in events if e.type == "transcript.text.delta"]
done = events[-1]
assert all(d.logprobs for d in deltas), deltas
consistent(done.text, done.logprobs)
assert len(done.logprobs) == sum(len(d.logprobs) for d in deltas)
try:
    transcribe(jfk, model="whisper-1", include=["logprobs"], response_format="verbose_json")
    raise SystemExit("expected an error")
except openai.BadRequestError as e:
    assert "logprobs" in e.message, e

# The stream's done event: languages, and usage in tokens as its schema says.
with open(jfk, "rb") as f:
    stream = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=f, stream=True)
    done = [e for e in stream if e.type == "transcript.text.done"][0]
assert [l.code for l in done.languages] == ["en"], done
assert done.usage.type == "tokens", done.usage
assert done.usage.input_token_details.audio_tokens == 550, done.usage
assert done.usage.output_tokens > 10, done.usage
assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens

print("ALL OK")
