#!/usr/bin/env bash
# Issue 21: the live latency bench before and after, interleaved, on the project's 2 CPU cores.
#   git worktree add --detach /tmp/before 4160c6f      # the commit before issue 21
#   bash docs/benchmarks/issue21/before-after.sh /tmp/before [ROUNDS]
# Each round runs, for 720p60 and 1080p60, without and with recording (--record, the app's --output
# path: VideoOutput, H.264), the before worktree then this tree. Both use the before tree's shipped
# model, so only the code differs. JSONs land in docs/benchmarks/issue21/ as SIDE-SIZE-REC-rN.json;
# probe.py's machine-speed figures go to probes.txt; python docs/benchmarks/issue21/summarize.py
# prints the medians.
set -euo pipefail
BEFORE=$(cd "$1" && pwd)
ROUNDS=${2:-3}
AFTER=$(pwd)
OUT=${OUT:-$AFTER/docs/benchmarks/issue21}
MODEL=$BEFORE/models/weights/default.pt
for round in $(seq 1 "$ROUNDS"); do
  for size in 720p60 1080p60; do
    for rec in live record; do
      for side in before after; do
        tree=$AFTER; [ "$side" = before ] && tree=$BEFORE
        extra=(); [ "$rec" = record ] && extra=(--record "/tmp/issue21-$side-$size.mp4")
        name=$side-$size-$rec-r$round
        echo "$name $(python "$AFTER/docs/benchmarks/issue21/probe.py")" >> "$OUT/probes.txt"
        echo "== $name (load $(cut -d' ' -f1 /proc/loadavg), probe $(tail -1 "$OUT/probes.txt" | cut -d' ' -f2-))"
        (cd "$tree" && python -m app.bench --live "$size" --seconds "${SECS:-10}" --backend onnxruntime-cpu \
          --checkpoint "$MODEL" "${extra[@]}" --json "$OUT/$name.json") | tee -a "$OUT/runs.log" | sed -n 1,2p
      done
    done
  done
done
rm -f /tmp/issue21-*.mp4
