#!/usr/bin/env python3
"""What detecting the language costs: each clip sent to /v1/audio/transcriptions
with its language and without (the server detects it, as every OpenAI client's
default does), alternately, for each model; the detected languages' accuracy.

usage: language_detection.py BASE_URL MODEL[,MODEL…] MANIFEST[,MANIFEST…] [REPEAT]
  e.g. language_detection.py http://127.0.0.1:8765 whisper-base,whisper-base-q8_0 \
         ../shared/fixtures/misc/manifest.json,../shared/fixtures/ru-golos/manifest.json 3
A manifest entry without "language" is taken as Russian (the Golos set).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

base, models, manifests = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 3
clips = []
for m in manifests:
    for e in json.load(open(m)):
        clips.append((os.path.join(os.path.dirname(m), e["filename"]), e.get("language", "ru")))

NAMES = {"en": "english", "ru": "russian", "de": "german", "es": "spanish", "fr": "french"}


def post(path, model, language):
    boundary = "b0undary"
    fields = {"model": model, "response_format": "verbose_json"}
    if language:
        fields["language"] = language
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
             f'filename="{os.path.basename(path)}"\r\n\r\n').encode()
    body += open(path, "rb").read() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/v1/audio/transcriptions", data=body,
                                 headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        answer = json.load(r)
    return time.perf_counter() - t, answer["language"]


for model in models:
    while True:  # loads the model (503 while it loads)
        try:
            post(clips[0][0], model, "en")
            break
        except urllib.error.HTTPError as e:
            if e.code != 503:
                raise
            time.sleep(0.5)
    given = detected = 0.0
    right = 0
    for path, lang in clips:
        times = {True: [], False: []}
        for _ in range(repeat):
            for with_language in (True, False):
                dt, said = post(path, model, lang if with_language else None)
                times[with_language].append(dt)
                if not with_language:
                    found = said
        g, d = sorted(times[True])[repeat // 2], sorted(times[False])[repeat // 2]
        given += g
        detected += d
        right += found == NAMES.get(lang, lang)
        print(f"{model:24} {os.path.basename(path):34} {lang}  with {g:6.3f} s  without {d:6.3f} s"
              f"  ×{d / g:4.2f}  detected {found}")
    print(f"{model}: without/with = {detected:.2f} / {given:.2f} s = ×{detected / given:.3f};"
          f" detected {right}/{len(clips)} right")
