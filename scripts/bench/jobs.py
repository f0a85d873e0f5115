#!/usr/bin/env python3
"""Durable jobs: upload memory, jobs accepted per second, and what durability costs.

    jobs.py GLAGOL_BINARY MODEL_DIR_OR_FILE [--big-mb 500] [--jobs 200]

Starts `glagol serve` on a fresh data directory with the model imported as
`bench-model` and measures:

1. upload: the server's peak RSS growth (VmHWM, reset through
   /proc/PID/clear_refs) while a --big-mb file is uploaded to POST /v1/jobs
   with curl, and the upload's time;
2. accept rate: --jobs small jobs (1 s WAV) submitted from 4 threads —
   jobs/s and the p50/p95 latency of the 202;
3. durability: the median latency of 100 sequential submissions with the job
   directory on disk and then on tmpfs (/dev/shm), where fsync costs nothing.
   The difference is what the upload's fsync, the directory fsync and the
   database's synchronous=FULL commits cost per job.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("glagol")
p.add_argument("model")
p.add_argument("--big-mb", type=int, default=500)
p.add_argument("--jobs", type=int, default=200)
args = p.parse_args()

data = tempfile.mkdtemp(prefix="glagol-jobs-bench-")
env = dict(os.environ, GLAGOL_DATA_DIR=data)
subprocess.run([args.glagol, "models", "import", args.model, "--as", "bench-model"],
               env=env, check=True, stdout=subprocess.DEVNULL)


def start(jobs_dir):
    proc = subprocess.Popen(
        [args.glagol, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off",
         "--default-model", "bench-model", "--jobs-dir", jobs_dir],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    return proc, line.removeprefix("glagol listening on ")


def wav(seconds):
    n = int(16000 * seconds)
    head = b"RIFF" + (36 + 2 * n).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    head += (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (16000).to_bytes(4, "little")
    head += (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    return head + b"data" + (2 * n).to_bytes(4, "little") + bytes(2 * n)


SMALL = wav(1.0)


def submit(base, body=SMALL):
    boundary = "bench-boundary-1b2c"
    form = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"content-type: application/octet-stream\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/v1/jobs", data=form,
                                 headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        assert r.status == 202, r.status
        r.read()
    return time.perf_counter() - t


def status_kb(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


out = {}
proc, base = start(os.path.join(data, "jobs"))
try:
    # 1. A big upload streams to disk.
    big = os.path.join(data, "big.wav")
    with open(big, "wb") as f:
        f.write(wav(0)[:44])
        f.truncate(args.big_mb << 20)
    time.sleep(1)
    open(f"/proc/{proc.pid}/clear_refs", "w").write("5")
    before = status_kb(proc.pid, "VmRSS")
    t = time.perf_counter()
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-F", f"file=@{big}",
                        f"{base}/v1/jobs"], capture_output=True, text=True, check=True)
    took = time.perf_counter() - t
    out["upload"] = {"mb": args.big_mb, "status": int(r.stdout), "seconds": round(took, 2),
                     "mb_per_s": round(args.big_mb / took, 1),
                     "peak_rss_growth_mb": round((status_kb(proc.pid, "VmHWM") - before) / 1024, 1)}
    os.remove(big)

    # 2. Accept rate from 4 threads.
    latencies, lock = [], threading.Lock()

    def worker(n):
        for _ in range(n):
            dt = submit(base)
            with lock:
                latencies.append(dt)

    t = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(args.jobs // 4,)) for _ in range(4)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    wall = time.perf_counter() - t
    out["accept"] = {"jobs": len(latencies), "jobs_per_s": round(len(latencies) / wall, 1),
                     "p50_ms": round(pct(latencies, 0.5) * 1000, 1),
                     "p95_ms": round(pct(latencies, 0.95) * 1000, 1)}
finally:
    proc.terminate()
    proc.wait()

# 3. Durability: disk against tmpfs.
for name, jobs_dir in [("disk", os.path.join(data, "jobs-disk")),
                       ("tmpfs", tempfile.mkdtemp(prefix="glagol-jobs-", dir="/dev/shm"))]:
    proc, base = start(jobs_dir)
    try:
        for _ in range(5):
            submit(base)
        lat = [submit(base) for _ in range(100)]
        out[f"sequential_{name}"] = {"p50_ms": round(statistics.median(lat) * 1000, 2),
                                     "p95_ms": round(pct(lat, 0.95) * 1000, 2)}
    finally:
        proc.terminate()
        proc.wait()
        if name == "tmpfs":
            shutil.rmtree(jobs_dir, ignore_errors=True)
out["durability_cost_ms_per_job"] = round(
    out["sequential_disk"]["p50_ms"] - out["sequential_tmpfs"]["p50_ms"], 2)
shutil.rmtree(data, ignore_errors=True)
print(json.dumps(out, indent=1))
