#!/usr/bin/env python3
"""Floods /v1/ws with 1 s frames of silence for N seconds beside a GET
/v1/models poller; prints the audio the server read and the API's latency.
Compare --max-live-speed 0 (unbounded) with the default.

    live_flood.py BASE_URL METRICS_URL SECONDS
    (a server with whisper-base; METRICS_URL is its /metrics listener)
"""
import asyncio, sys, time, urllib.request, json, threading
import websockets

base, metrics, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])

def audio_read():
    text = urllib.request.urlopen(metrics).read().decode()
    for line in text.splitlines():
        if line.startswith("glagol_live_audio_milliseconds_total"):
            return float(line.rsplit(" ", 1)[1]) / 1000
    return 0.0

lat = []
stop = False
def poll():
    while not stop:
        t = time.monotonic()
        urllib.request.urlopen(base + "/v1/models").read()
        lat.append(time.monotonic() - t)
        time.sleep(0.2)

async def main():
    global stop
    threading.Thread(target=poll, daemon=True).start()
    frame = bytes(32000)
    async with websockets.connect(base.replace("http", "ws") + "/v1/ws?model=whisper-base&language=en", max_size=None) as ws:
        await ws.recv()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            await ws.send(frame)
        wall = time.monotonic() - t0
        read = audio_read()
        stop = True
        lat.sort()
        print(json.dumps({"wall_s": round(wall, 1), "audio_read_s": round(read), "x_real_time": round(read / wall, 1),
                          "api_p50_ms": round(lat[len(lat)//2]*1000, 1), "api_max_ms": round(lat[-1]*1000, 1), "api_calls": len(lat)}))

asyncio.run(main())
