"""Browser-safe Realtime secrets through the unmodified official client: a
back end holding the API key mints a secret (GA and beta routes), and a
"browser" client holding only the secret opens a transcription session with
the minted settings. A tampered or expired secret is refused with an
`error` event and close 1008 (a code the client does not reconnect on); a
secret opens nothing but /v1/realtime and cannot mint another.

    python3 openai_client_secret.py BASE_URL KEY JFK_WAV
"""
import base64
import sys
import time

import openai
import websockets
from openai import OpenAI
from realtime_audio import pcm24k

base, key, jfk = sys.argv[1:4]
ws_base = base.replace("http", "ws", 1)
backend = OpenAI(base_url=base, api_key=key)
phrase = "ask not what your country can do for you"

pcm = pcm24k(jfk)


def norm(s):
    return "".join(c for c in s.lower() if c.isalnum() or c == " ")


def browser(secret, beta):
    client = OpenAI(base_url=base, api_key=secret, websocket_base_url=ws_base)
    if beta:
        return client.beta.realtime.connect(model="gpt-4o-transcribe",
                                             extra_query={"intent": "transcription"})
    return client.realtime.connect(extra_query={"intent": "transcription"})


def transcribe(secret, beta=False):
    """The session the secret opens, and jfk.wav's transcript in it (the
    minted session has no turn detection: the client commits)."""
    with browser(secret, beta) as conn:
        created = conn.recv()
        assert created.type in ("session.created", "transcription_session.created"), created
        for i in range(0, len(pcm), 48000):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + 48000]).decode())
        conn.input_audio_buffer.commit()
        while True:
            event = conn.recv()
            if event.type == "conversation.item.input_audio_transcription.completed":
                return created.to_dict()["session"], event.transcript
            assert event.type != "error", event


def refused(secret):
    """The error code and the close code a refused secret gets."""
    with browser(secret, beta=False) as conn:
        event = conn.recv()
        assert event.type == "error", event
        try:
            conn.recv()
        except websockets.exceptions.ConnectionClosed as e:
            return event.error.code, e.rcvd.code
        raise SystemExit("the connection stayed open")


session = {"type": "transcription", "audio": {"input": {
    "format": {"type": "audio/pcm", "rate": 24000},
    "transcription": {"model": "whisper-1", "language": "en"},
    "turn_detection": None}}}
short = backend.realtime.client_secrets.create(
    session=session, expires_after={"anchor": "created_at", "seconds": 10})
minted_at = time.time()
ga = backend.realtime.client_secrets.create(
    session=session, expires_after={"anchor": "created_at", "seconds": 120})
assert ga.value.startswith("ek_") and ga.expires_at > time.time() + 100, ga
assert ga.session.type == "transcription", ga.session

shown, text = transcribe(ga.value)
assert shown["audio"]["input"]["transcription"]["language"] == "en", shown
assert shown["audio"]["input"]["turn_detection"] is None, shown
assert phrase in norm(text), text

beta = backend.beta.realtime.transcription_sessions.create(
    input_audio_format="pcm16",
    input_audio_transcription={"model": "whisper-1", "language": "en"},
    turn_detection=None,
    client_secret={"expires_at": {"anchor": "created_at", "seconds": 60}})
assert beta.client_secret.value.startswith("ek_"), beta
shown, text = transcribe(beta.client_secret.value, beta=True)
assert shown["input_audio_transcription"]["language"] == "en", shown
assert phrase in norm(text), text

# Tampered with: refused, and closed for good.
tampered = ga.value[:-2] + ("AA" if not ga.value.endswith("AA") else "BB")
assert refused(tampered) == ("invalid_client_secret", 1008)

# A secret opens nothing else, and cannot mint.
holder = OpenAI(base_url=base, api_key=ga.value)
try:
    holder.models.list()
    raise SystemExit("a secret listed models")
except openai.PermissionDeniedError as e:
    assert e.code == "client_secret_not_allowed", e
try:
    holder.realtime.client_secrets.create(session=session)
    raise SystemExit("a secret minted a secret")
except openai.PermissionDeniedError as e:
    assert e.code == "client_secret_not_allowed", e
try:
    backend.realtime.client_secrets.create(
        session={"type": "realtime"}, expires_after={"anchor": "created_at", "seconds": 60})
    raise SystemExit("minted a conversation session")
except openai.BadRequestError as e:
    assert e.code == "unsupported_session_type", e

# Expired.
time.sleep(max(0.0, minted_at + 11 - time.time()))
assert refused(short.value) == ("client_secret_expired", 1008)

print("ALL OK")
