#!/usr/bin/env python3
# Throughput of concurrent native-API requests (compare --max-batch 1 and 8 on the same server binary).
# usage: server_batching.py BASE_URL MODEL CONCURRENCY ROUNDS FILE.wav...
import sys, time, threading, json, urllib.request, statistics
base, model, conc, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = [open(p, 'rb').read() for p in sys.argv[5:]]
def one(data):
    req = urllib.request.Request(f'{base}/v1/transcribe?model={model}&format=json', data=data)
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        r.read()
    return time.perf_counter() - t
while json.load(urllib.request.urlopen(f'{base}/v1/models/{model}'))['state'] != 'ready':
    time.sleep(0.3)
one(files[0])
lat = []
t0 = time.perf_counter()
for _ in range(rounds):
    out = [None] * conc
    def w(i):
        out[i] = one(files[i % len(files)])
    ths = [threading.Thread(target=w, args=(i,)) for i in range(conc)]
    [x.start() for x in ths]; [x.join() for x in ths]
    lat += out
wall = time.perf_counter() - t0
lat.sort()
print(json.dumps({"conc": conc, "requests": len(lat), "wall_s": round(wall, 2), "rps": round(len(lat) / wall, 3),
                  "p50_s": round(lat[len(lat)//2], 3), "p95_s": round(lat[int(0.95*(len(lat)-1))], 3)}))
