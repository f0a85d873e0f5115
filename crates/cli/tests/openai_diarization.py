"""Speakers through the unmodified official `openai` client against a
running glagol with the diarization models (the two-speaker sample).

    python3 openai_diarization.py BASE_URL SAMPLE_WAV
"""
import base64
import io
import sys
import wave

from openai import OpenAI

base, sample = sys.argv[1:3]
client = OpenAI(base_url=base, api_key="unused")


def transcribe(**kw):
    with open(sample, "rb") as f:
        return client.audio.transcriptions.create(file=f, language="en", chunking_strategy="auto", **kw)


# diarized_json parses into the client's TranscriptionDiarized.
r = transcribe(model="gpt-4o-transcribe-diarize", response_format="diarized_json")
assert type(r).__name__ == "TranscriptionDiarized", type(r)
assert {s.speaker for s in r.segments} == {"A", "B"}, r.segments
assert [s.id for s in r.segments] == [f"seg_{i}" for i in range(len(r.segments))], r.segments
assert all(s.type == "transcript.text.segment" and s.end >= s.start for s in r.segments)
assert r.text.split() == " ".join(s.text for s in r.segments).split(), r
assert r.usage.type == "duration" and r.usage.seconds == 30, r.usage
speaker_of = {s.text: s.speaker for s in r.segments}

# Streamed: each delta names its segment, each segment event follows it.
stream = transcribe(model="gpt-4o-transcribe-diarize", response_format="diarized_json", stream=True)
kinds, deltas, segments = [], [], []
for event in stream:
    kinds.append(event.type)
    if event.type == "transcript.text.delta":
        deltas.append(event)
    elif event.type == "transcript.text.segment":
        segments.append(event)
assert kinds[-1] == "transcript.text.done", kinds
assert len(segments) == len(deltas) > 1, kinds
assert [d.segment_id for d in deltas] == [s.id for s in segments]
assert {s.speaker for s in segments} == {"A", "B"}
assert {s.text: s.speaker for s in segments} == speaker_of


def clip(start, end):
    """A data URL of sample[start:end] as WAV."""
    with wave.open(sample, "rb") as w:
        rate = w.getframerate()
        w.setpos(int(start * rate))
        frames = w.readframes(int((end - start) * rate))
        params = w.getparams()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
    return "data:audio/wav;base64," + base64.b64encode(out.getvalue()).decode()


# Known speakers: Diane (10.6-14.4 s of the sample) and Sheila (22-27.5 s).
diane, sheila = clip(10.6, 14.4), clip(22.0, 27.5)
r = transcribe(model="gpt-4o-transcribe-diarize", response_format="diarized_json",
               known_speaker_names=["sheila", "diane"], known_speaker_references=[sheila, diane])
names = {s.speaker for s in r.segments}
assert names == {"diane", "sheila"}, r.segments
said = lambda words: next(s.speaker for s in r.segments if words in s.text)
assert said("Diane in New Jersey") == "diane", r.segments
assert said("Sheila") == "sheila", r.segments
# One name: the other speaker keeps a letter.
r = transcribe(model="gpt-4o-transcribe-diarize", response_format="diarized_json",
               known_speaker_names=["diane"], known_speaker_references=[diane])
names = {s.speaker for s in r.segments}
assert "diane" in names and len(names) == 2 and names - {"diane"} <= {"A", "B"}, names

# A clip outside 2-10 s is refused by name.
try:
    transcribe(model="gpt-4o-transcribe-diarize", response_format="diarized_json",
               known_speaker_names=["diane"], known_speaker_references=[clip(10.6, 11.4)])
    raise SystemExit("expected an error")
except Exception as e:  # openai.BadRequestError
    assert getattr(e, "code", None) == "invalid_known_speaker", e

print("ALL OK")
