#!/usr/bin/env python3
"""Peak server memory while it takes the longest audio it accepts.

For each file: the growth of the server's peak RSS (VmHWM, reset between
cases through /proc/PID/clear_refs) over its RSS before the request, for one
request and for 4 at once, next to the size of the audio as 16 kHz mono
floats (what the engines need).

    memory_bombs.py BASE_URL SERVER_PID MODEL FILE[:SECONDS] ...

Run the server with an audio memory budget large enough for 4 (e.g.
--audio-memory-mb 4096) to measure, or smaller to see refusals.
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

base, pid, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def status_kb(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak():
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def send(data, results):
    req = urllib.request.Request(f"{base}/v1/transcribe?model={model}&format=json", data=data)
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=3600) as r:
            r.read()
            results.append((r.status, time.perf_counter() - t))
    except urllib.error.HTTPError as e:
        results.append((e.code, time.perf_counter() - t))


for arg in sys.argv[4:]:
    path, _, seconds = arg.partition(":")
    data = open(path, "rb").read()
    mono_mb = float(seconds or 0) * 16000 * 4 / 2**20
    row = {"file": path, "bytes": len(data), "mono_16k_mb": round(mono_mb, 1)}
    for n in (1, 4):
        time.sleep(1)
        reset_peak()
        before = status_kb("VmRSS")
        results = []
        threads = [threading.Thread(target=send, args=(data, results)) for _ in range(n)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        peak = status_kb("VmHWM")
        row[f"x{n}"] = {
            "statuses": sorted(r[0] for r in results),
            "seconds": round(max(r[1] for r in results), 1),
            "peak_growth_mb": round((peak - before) / 1024, 1),
        }
    print(json.dumps(row), flush=True)
