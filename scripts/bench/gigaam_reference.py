#!/usr/bin/env python3
"""Time the reference GigaAM implementation (onnx-asr) on the same model and
files as `glagol bench`, for a same-run comparison.

    pip install onnx-asr onnxruntime==1.31.1
    python3 scripts/bench/gigaam_reference.py --model DIR --threads 2 \
        --files a04.wav a16.wav a60.wav [--group 4] [--int8] [--repeat 3]

Prints one JSON line: audio seconds, wall seconds (fastest of --repeat runs
after one warm-up), RTF and peak RSS. With --group N the files are recognised
N at a time in one batch (onnx-asr's recognize on a list).
"""
import argparse
import json
import resource
import time
import wave

import numpy as np
import onnx_asr
import onnxruntime as ort


def load(path):
    w = wave.open(path)
    assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
    return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--group", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--int8", action="store_true")
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    model = onnx_asr.load_model("gigaam-v3-e2e-rnnt", a.model, sess_options=so,
                                quantization="int8" if a.int8 else None)
    waves = [load(f) for f in a.files]
    audio_s = sum(len(w) for w in waves) / 16000
    best = None
    for run in range(a.repeat + 1):
        t = time.perf_counter()
        for i in range(0, len(waves), a.group):
            group = waves[i:i + a.group]
            out = model.recognize(group if len(group) > 1 else group[0])
        dt = time.perf_counter() - t
        if run > 0 and (best is None or dt < best):
            best = dt
    print(json.dumps({"impl": "onnx-asr", "threads": a.threads, "group": a.group, "int8": a.int8,
                      "audio_seconds": audio_s, "wall_seconds": best, "rtf": best / audio_s,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
