"""`stream=True` with the unmodified official `openai` client on a long
recording: reads the server's decoded-segment counter when the first delta
arrives and again at the end, so the test can tell whether segments were
still being decoded after the first delta reached the client.

    python3 openai_stream.py BASE_URL WAV METRICS_URL
"""
import json
import sys
import urllib.request

from openai import OpenAI

base, wav, metrics = sys.argv[1:4]


def decoded_segments():
    text = urllib.request.urlopen(metrics).read().decode()
    for line in text.splitlines():
        if line.startswith("glagol_segments_decoded_total{") and 'model="whisper-base"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


client = OpenAI(base_url=base, api_key="unused")
deltas, done, at_first_delta, kinds = [], None, None, []
with open(wav, "rb") as f:
    stream = client.audio.transcriptions.create(
        model="whisper-1", file=f, stream=True, language="en")
    for event in stream:
        kinds.append(event.type)
        if event.type == "transcript.text.delta":
            if at_first_delta is None:
                at_first_delta = decoded_segments()
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event.text
print(json.dumps({
    "deltas": deltas,
    "done": done,
    "at_first_delta": at_first_delta,
    "at_end": decoded_segments(),
    "kinds": kinds,
}))
