#!/bin/bash
# Latency of one key's clip while another key has 8 of the same clip queued.
# Run it against a server without keys (every request its own flow) and one
# with two keys (requests shared fairly per key), e.g.:
#   glagol serve --listen 127.0.0.1:8765 --preload whisper-base
#   scripts/bench/key_fairness.sh 8765 "" ""
#   glagol serve --listen 127.0.0.1:8765 --preload whisper-base --config keys.toml   # keys a, b
#   scripts/bench/key_fairness.sh 8765 "-H x-api-key:a-key" "-H x-api-key:b-key"
# usage: key_fairness.sh PORT "CURL ARGS OF KEY A" "CURL ARGS OF KEY B" [CLIP.wav]
set -e
PORT=$1
CLIP=${4:-../shared/fixtures/misc/jfk.wav}
URL="http://127.0.0.1:$PORT/v1/transcribe?language=en&format=json"
for _ in $(seq 1 8); do
  # shellcheck disable=SC2086
  curl -s -o /dev/null $2 -X POST "$URL" --data-binary @"$CLIP" &
done
sleep 0.5
# shellcheck disable=SC2086
curl -s -o /dev/null -w "key B: HTTP %{http_code} in %{time_total} s\n" $3 -X POST "$URL" --data-binary @"$CLIP"
wait
