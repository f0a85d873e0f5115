"""Speakers in OpenAI's Realtime transcription with the unmodified official
client: the transcription model `gpt-4o-transcribe-diarize` makes each turn
send a `conversation.item.input_audio_transcription.segment` with its
speaker before `completed`.

    python3 openai_realtime_speakers.py BASE_URL WAV

WAV holds JFK, another voice, then JFK again, with pauses between.
"""
import base64
import sys
import threading
import time

from openai import OpenAI
from realtime_audio import pcm24k

base, path = sys.argv[1], sys.argv[2]
pcm = pcm24k(path)
client = OpenAI(base_url=base, api_key="unused", websocket_base_url=base.replace("http", "ws", 1))

segments, completed = [], []
with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
    conn.session.update(session={
        "type": "transcription",
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "gpt-4o-transcribe-diarize"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        }},
    })

    def send():
        step = 4800
        for i in range(0, len(pcm), step):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + step]).decode())
        for _ in range(15):
            conn.input_audio_buffer.append(audio=base64.b64encode(b"\0" * step).decode())

    sender = threading.Thread(target=send)
    sender.start()
    started = set()
    deadline = time.time() + 180
    for event in conn:
        if event.type == "input_audio_buffer.speech_started":
            started.add(event.item_id)
        elif event.type == "conversation.item.input_audio_transcription.segment":
            segments.append(event)
        elif event.type == "conversation.item.input_audio_transcription.completed":
            completed.append(event)
            # Every turn's speaker comes before its transcript.
            assert segments and segments[-1].item_id == event.item_id, (segments, event)
            assert segments[-1].text == event.transcript
        elif event.type == "error":
            raise SystemExit(f"error: {event}")
        done = {c.item_id for c in completed}
        if not sender.is_alive() and started and started <= done:
            break
        assert time.time() < deadline, (started, done)

speakers = [s.speaker for s in segments]
print(speakers, [s.text for s in segments])
assert speakers[0] == "A" and speakers[-1] == "A", speakers
assert "B" in speakers and set(speakers) <= {"A", "B"}, speakers
print("ALL OK")
