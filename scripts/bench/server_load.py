#!/usr/bin/env python3
# Throughput and p50/p95 latency of /v1/audio/transcriptions at several concurrencies.
# usage: server_load.py BASE_URL FILE.wav 1,4,16 [LANGUAGE]   (server with whisper-base;
# LANGUAGE defaults to en; `auto` sends none, so the server detects it, as most clients do)
import sys, time, threading, statistics, urllib.request, json
base, path = sys.argv[1], sys.argv[2]
language = sys.argv[4] if len(sys.argv) > 4 else 'en'
data = open(path, 'rb').read()
boundary = 'b0undary'
field = '' if language == 'auto' else (
    f'--{boundary}\r\nContent-Disposition: form-data; name="language"\r\n\r\n{language}\r\n')
body = (field +
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n').encode() + data + f'\r\n--{boundary}--\r\n'.encode()
def one():
    req = urllib.request.Request(base + '/v1/audio/transcriptions', data=body, headers={'content-type': f'multipart/form-data; boundary={boundary}'})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read(); code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    return time.perf_counter() - t, code
import time as _t
while json.load(urllib.request.urlopen(base + '/v1/models/whisper-base'))['state'] != 'ready':
    try: one()
    except Exception: pass
    _t.sleep(0.5)
one()  # warm-up
for conc in [int(c) for c in sys.argv[3].split(',')]:
    total = max(8, conc * 2)
    lat, codes, lock = [], [], threading.Lock()
    idx = iter(range(total))
    def worker():
        while True:
            with lock:
                try: next(idx)
                except StopIteration: return
            dt, code = one()
            with lock: lat.append(dt); codes.append(code)
    t = time.perf_counter()
    ths = [threading.Thread(target=worker) for _ in range(conc)]
    [x.start() for x in ths]; [x.join() for x in ths]
    wall = time.perf_counter() - t
    ok = [l for l, c in zip(lat, codes) if c == 200]
    ok.sort()
    p = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))]
    print(json.dumps({"concurrency": conc, "requests": total, "ok": len(ok), "other": {str(c): codes.count(c) for c in set(codes) if c != 200},
                      "throughput_rps": round(len(ok) / wall, 3), "p50_s": round(p(0.5), 3), "p95_s": round(p(0.95), 3)}))
