#!/usr/bin/env python3
# Completion order of two long files and a short clip on one worker (short should not wait for both).
# usage: server_fairness.py BASE_URL LONG.wav SHORT.wav   (server with whisper-base, --workers 1)
import sys, time, threading, json, urllib.request
base = sys.argv[1]
long_ = open(sys.argv[2], 'rb').read()
short = open(sys.argv[3], 'rb').read()
def one(name, data, log, t0):
    req = urllib.request.Request(f'{base}/v1/transcribe?model=whisper-base&language=en&format=json', data=data)
    s = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r: r.read()
    e = time.perf_counter()
    log.append((name, round(s - t0, 2), round(e - t0, 2), round(e - s, 2)))
while json.load(urllib.request.urlopen(f'{base}/v1/models/whisper-base'))['state'] != 'ready': time.sleep(0.3)
for name, d in (('warm-short', short), ('warm-long', long_)):
    log = []; one(name, d, log, time.perf_counter()); print('alone', log[0])
log, t0, ths = [], time.perf_counter(), []
for name, data, delay in (('long-1', long_, 0), ('long-2', long_, 0.3), ('short', short, 0.6)):
    time.sleep(delay - (time.perf_counter() - t0) if delay > time.perf_counter() - t0 else 0)
    th = threading.Thread(target=one, args=(name, data, log, t0)); th.start(); ths.append(th)
[t.join() for t in ths]
for name, start, end, lat in sorted(log, key=lambda x: x[2]): print(f'{name}: sent {start}s, done {end}s, latency {lat}s')
