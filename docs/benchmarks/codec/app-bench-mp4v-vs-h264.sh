#!/usr/bin/env bash
# Before (mp4v) and after (h264, libx264 ultrafast) end to end, interleaved twice, one session.
cd "$(dirname "$0")/../../.."
for round in 1 2; do
  for codec in mp4v h264; do
    echo "=== round $round: python -m app.bench --sizes 720p --frames 150 --codec $codec"
    python -m app.bench --sizes 720p --frames 150 --codec $codec --json docs/benchmarks/codec/app-bench-720p-round$round-$codec.json 2>&1 | grep -E "^720p  |^naive:|^encoder"
  done
done
