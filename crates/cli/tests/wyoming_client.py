"""A Wyoming client built on the official `wyoming` package (pip install
wyoming==1.10.2), doing what Home Assistant and other clients do, for the
server tests. Prints one JSON object.

    python3 wyoming_client.py HOST PORT info
    python3 wyoming_client.py HOST PORT ha LANGUAGE WAV...    # Home Assistant's flow, a connection each
    python3 wyoming_client.py HOST PORT two LANGUAGE MODEL WAV WAV  # two utterances on one connection, model by name
    python3 wyoming_client.py HOST PORT busy LANGUAGE WAV     # describe timed while another connection recognises
    python3 wyoming_client.py HOST PORT misc                  # ping, empty audio, unknown events
    python3 wyoming_client.py HOST PORT hostile               # garbage, oversized, a client gone mid-utterance
    python3 wyoming_client.py HOST PORT held LANGUAGE WAV     # sends half in real time, says "sent", reads to the close
    python3 wyoming_client.py HOST PORT zeroconf NAME         # resolves NAME._wyoming._tcp.local. as HA does (pip install zeroconf)
"""
import asyncio
import json
import sys
import time
import wave

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong

HOST, PORT, MODE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]


def chunks(path, frames=1024):
    with wave.open(path, "rb") as w:
        fmt = dict(rate=w.getframerate(), width=w.getsampwidth(), channels=w.getnchannels())
        while data := w.readframes(frames):
            yield AudioChunk(audio=data, **fmt), fmt


async def read(client, timeout=60):
    event = await asyncio.wait_for(client.read_event(), timeout)
    if event is None:
        raise ConnectionError("server closed")
    return event


async def utterance(client, path, language, realtime=False, name=None):
    """Sends one utterance while reading (as HA's duplex client does);
    returns what came back, up to transcript-stop."""
    await client.write_event(Transcribe(language=language, name=name).event())

    async def upload():
        first = True
        for chunk, fmt in chunks(path):
            if first:
                await client.write_event(AudioStart(**fmt).event())
                first = False
            await client.write_event(chunk.event())
            if realtime:
                await asyncio.sleep(chunk.seconds)
        await client.write_event(AudioStop().event())
        return time.monotonic()

    sender = asyncio.create_task(upload())
    got = {"order": [], "chunks": [], "text": None, "language": None}
    while True:
        event = await read(client)
        got["order"].append(event.type)
        if TranscriptChunk.is_type(event.type):
            got["chunks"].append(TranscriptChunk.from_event(event).text)
        elif Transcript.is_type(event.type):
            t = Transcript.from_event(event)
            got["text"], got["language"] = t.text, t.language
            got["stop_to_transcript_s"] = time.monotonic() - await sender
        elif TranscriptStop.is_type(event.type):
            break
        elif Error.is_type(event.type):
            got["error"] = Error.from_event(event).to_dict()
            break
    await sender
    return got


async def connect():
    client = AsyncTcpClient(HOST, PORT)
    await client.connect()
    return client


async def describe(client):
    await client.write_event(Describe().event())
    while True:
        event = await read(client, 5)
        if Info.is_type(event.type):
            return Info.from_event(event)


async def main():
    out = {}
    if MODE == "info":
        client = await connect()
        info = await describe(client)
        program = info.asr[0]
        out = {
            "asr": len(info.asr),
            "name": program.name,
            "streaming": program.supports_transcript_streaming,
            "external_vad": program.requires_external_vad,
            "models": {m.name: m.languages for m in program.models},
            "installed": all(m.installed for m in program.models),
        }
        await client.disconnect()
    elif MODE == "ha":
        language, paths = ARGS[0], ARGS[1:]
        out["utterances"] = []
        for path in paths:
            client = await connect()
            out["utterances"].append(await utterance(client, path, language))
            await client.disconnect()
    elif MODE == "two":
        language, name, a, b = ARGS
        client = await connect()
        out["utterances"] = [await utterance(client, a, language, name=name),
                             await utterance(client, b, language, name=name)]
        await client.disconnect()
    elif MODE == "busy":
        language, path = ARGS
        busy = await connect()
        task = asyncio.create_task(utterance(busy, path, language, realtime=True))
        await asyncio.sleep(1.0)
        times = []
        for _ in range(5):
            client = await connect()
            start = time.monotonic()
            await describe(client)
            times.append(time.monotonic() - start)
            await client.disconnect()
            await asyncio.sleep(0.2)
        out = {"describe_s": times, "utterance": await task}
    elif MODE == "misc":
        client = await connect()
        await client.write_event(Ping(text="hello").event())
        out["pong"] = Pong.from_event(await read(client, 5)).text
        await client.write_event(Event(type="no-such-event", data={"x": 1}))
        await client.write_event(Transcribe(language="ru").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioStop().event())
        empty = []
        while not empty or empty[-1].type != TranscriptStop().event().type:
            empty.append(await read(client, 10))
        out["empty"] = [e.type for e in empty]
        out["empty_text"] = next(Transcript.from_event(e).text for e in empty if Transcript.is_type(e.type))
        # A bare audio-stop, and the connection still answers after it.
        await client.write_event(AudioStop().event())
        bare = []
        while not bare or bare[-1].type != "transcript-stop":
            bare.append(await read(client, 10))
        out["bare"] = [e.type for e in bare]
        out["info_after"] = (await describe(client)).asr[0].name
        await client.disconnect()
    elif MODE == "hostile":
        # A header that is not JSON.
        reader, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(b"this is not json\n")
        await writer.drain()
        out["garbage"] = (await asyncio.wait_for(reader.read(65536), 10)).decode(errors="replace")
        out["garbage_closed"] = await asyncio.wait_for(reader.read(1), 10) == b""
        writer.close()
        # A payload over the limit.
        reader, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(json.dumps({"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},
                                 "payload_length": 100 << 20}).encode() + b"\n")
        await writer.drain()
        out["oversized"] = (await asyncio.wait_for(reader.read(65536), 10)).decode(errors="replace")
        writer.close()
        # A client that goes away in the middle of an utterance.
        client = await connect()
        await client.write_event(Transcribe(language="ru").event())
        for i, (chunk, fmt) in enumerate(chunks(ARGS[0])):
            await client.write_event(chunk.event())
            if i == 20:
                break
        await client.disconnect()
        # The server still serves.
        client = await connect()
        out["after"] = (await describe(client)).asr[0].name
        await client.disconnect()
    elif MODE == "held":
        language, path = ARGS
        client = await connect()
        await client.write_event(Transcribe(language=language).event())
        all_chunks = list(chunks(path))
        await client.write_event(AudioStart(**all_chunks[0][1]).event())
        for chunk, _ in all_chunks[: len(all_chunks) // 2]:
            await client.write_event(chunk.event())
            await asyncio.sleep(chunk.seconds)
        print("sent", flush=True)
        got = []
        while True:
            event = await asyncio.wait_for(client.read_event(), 30)
            if event is None:
                break
            got.append(event.type)
            if Transcript.is_type(event.type):
                out["text"] = Transcript.from_event(event).text
        out["order"] = got
    elif MODE == "zeroconf":
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        info = AsyncServiceInfo("_wyoming._tcp.local.", f"{ARGS[0]}._wyoming._tcp.local.")
        found = await info.async_request(zc.zeroconf, 5000)
        out = {"found": bool(found), "port": info.port, "addresses": info.parsed_addresses()}
        await zc.async_close()
    print(json.dumps(out, ensure_ascii=False))


asyncio.run(main())
