"""A live client that sends a WAV over /v1/ws as fast as the server reads it,
with the `websockets` client's keep-alive pings on (every PING s, closing
with 1011 "keepalive ping timeout" when a pong takes longer than TIMEOUT s),
reading the server's messages as they come. Prints one JSON line: the
finals, speech_stopped and error messages received, the close code, and how
long sending and the whole session took.

    python3 live_fast_sender.py WS_URL WAV PING TIMEOUT
"""
import asyncio
import json
import sys
import time
import wave

import websockets


async def main(url, path, ping, timeout):
    with wave.open(path) as w:
        data = w.readframes(w.getnframes())
    step = 3200  # 100 ms of 16 kHz PCM16
    start = time.monotonic()
    got = {"final": 0, "speech_stopped": 0, "error": []}
    async with websockets.connect(url, max_size=None, ping_interval=ping, ping_timeout=timeout) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready", ready

        async def read():
            async for message in ws:
                m = json.loads(message)
                if m["type"] == "error":
                    got["error"].append(m)
                elif m["type"] in got:
                    got[m["type"]] += 1

        reader = asyncio.create_task(read())
        for i in range(0, len(data), step):
            await ws.send(data[i:i + step])
        sent = time.monotonic() - start
        await ws.send(json.dumps({"type": "stop"}))
        try:
            await reader
        except websockets.ConnectionClosed:
            pass
        code = ws.close_code
    print(json.dumps({"finals": got["final"], "speech_stopped": got["speech_stopped"],
                      "errors": got["error"], "close": code, "sent_s": round(sent, 2),
                      "total_s": round(time.monotonic() - start, 2)}))


asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
