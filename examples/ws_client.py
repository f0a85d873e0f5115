#!/usr/bin/env python3
"""Streams a 16 kHz mono WAV file to glagol's native live protocol (/v1/ws)
in real time and prints partials in place and finals on their own lines.

    pip install "websockets>=13"
    python3 examples/ws_client.py speech.wav [ws://127.0.0.1:8765/v1/ws?language=ru] [--fast]
"""
import asyncio
import json
import sys
import wave

import websockets


async def main(path, url, fast):
    with wave.open(path) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, "a mono 16-bit WAV"
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    sep = "&" if "?" in url else "?"
    async with websockets.connect(f"{url}{sep}sample_rate={rate}") as ws:
        print(json.loads(await ws.recv()))  # ready

        async def send():
            step = rate // 10 * 2  # 100 ms frames
            for i in range(0, len(pcm), step):
                await ws.send(pcm[i:i + step])
                if not fast:
                    await asyncio.sleep(0.1)
            await ws.send(json.dumps({"type": "stop"}))

        sender = asyncio.create_task(send())
        async for message in ws:
            m = json.loads(message)
            if m["type"] == "partial":
                print(f"\r… {m['text']}", end="", flush=True)
            elif m["type"] == "final":
                print(f"\r[{m['start']:7.2f}–{m['end']:7.2f}] {m['text']}")
            elif m["type"] == "error":
                print(f"\nerror: {m['code']}: {m['message']}")
        await sender


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(args[0], args[1] if len(args) > 1 else "ws://127.0.0.1:8765/v1/ws", "--fast" in sys.argv))
