"""OpenAI's Realtime transcription with the unmodified official client
(`pip install "openai[realtime]"`): streams a 16 kHz WAV as 24 kHz PCM16 in
100 ms appends, paced in real time, and reports per turn the deltas, the
completed transcript and how many deltas arrived before speech stopped.

    python3 openai_realtime.py BASE_URL WAV ga|beta TURNS

GA asks for Russian or English with a keyword and near-field noise
reduction, beta for Russian with semantic VAD; the session as the server
last confirmed it is printed beside the turns.
"""
import base64
import json
import sys
import threading
import time

from openai import OpenAI
from realtime_audio import pcm24k

base, path, shape, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pcm = pcm24k(path)

client = OpenAI(base_url=base, api_key="unused", websocket_base_url=base.replace("http", "ws", 1))
if shape == "ga":
    conn_cm = client.realtime.connect(extra_query={"intent": "transcription"})
else:
    conn_cm = client.beta.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"})

turns, current, session = {}, {}, None
with conn_cm as conn:
    if shape == "ga":
        conn.session.update(session={
            "type": "transcription",
            "include": ["item.input_audio_transcription.logprobs"],
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "languages": ["ru", "en"],
                                  "keywords": ["Голос"]},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            }},
        })
    else:
        conn.send({"type": "transcription_session.update", "session": {
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": "whisper-1", "language": "ru"},
            "input_audio_noise_reduction": {"type": "far_field"},
            "turn_detection": {"type": "semantic_vad", "eagerness": "medium"},
        }})

    def send():
        step = 4800  # 100 ms of 24 kHz PCM16
        t0 = time.time()
        for k, i in enumerate(range(0, len(pcm), step)):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + step]).decode())
            time.sleep(max(0.0, t0 + (k + 1) * 0.1 - time.time()))
        # Trailing silence so the last turn ends by the VAD.
        for _ in range(15):
            conn.input_audio_buffer.append(audio=base64.b64encode(b"\0" * step).decode())
            time.sleep(0.1)

    sender = threading.Thread(target=send)
    sender.start()
    speaking = set()
    deadline = time.time() + len(pcm) / 48000 + 180
    for event in conn:
        kind = event.type
        item = getattr(event, "item_id", None)
        if kind in ("session.updated", "transcription_session.updated"):
            session = event.to_dict()["session"]
        elif kind == "input_audio_buffer.speech_started":
            speaking.add(item)
        elif kind == "input_audio_buffer.speech_stopped":
            speaking.discard(item)
        elif kind == "conversation.item.input_audio_transcription.delta":
            t = turns.setdefault(item, {"deltas": "", "deltas_before_stop": 0})
            t["deltas"] += event.delta
            # With include logprobs, each delta's tokens join to the delta.
            tokens = getattr(event, "logprobs", None)
            t.setdefault("delta_logprobs", []).append(
                None if tokens is None else "".join(x.token for x in tokens) == event.delta)
            if item in speaking:
                t["deltas_before_stop"] += 1
        elif kind == "conversation.item.input_audio_transcription.completed":
            t = turns.setdefault(item, {"deltas": "", "deltas_before_stop": 0, "delta_logprobs": []})
            t["transcript"] = event.transcript
            t["logprob_tokens"] = "".join(x.token for x in (event.logprobs or []))
            if sum("transcript" in x for x in turns.values()) >= expected:
                break
        elif kind == "error":
            raise SystemExit(f"error event: {event}")
        if time.time() > deadline:
            break
    sender.join()
print(json.dumps({"turns": list(turns.values()), "session": session}))
