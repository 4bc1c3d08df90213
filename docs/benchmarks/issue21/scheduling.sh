#!/usr/bin/env bash
# Issue 21: inference scheduling on the project's 2 CPU cores, this tree, interleaved rounds:
# two workers x one thread against one worker x two threads, queue to rendering 1 or 2 deep.
#   bash docs/benchmarks/issue21/scheduling.sh [ROUNDS] [SIZE]
# JSONs land in docs/benchmarks/issue21/ as sched-SIZE-wWtT-qQ-rN.json; summarize.py prints the medians.
set -euo pipefail
ROUNDS=${1:-3}
SIZE=${2:-1080p60}
OUT=${OUT:-docs/benchmarks/issue21}
for round in $(seq 1 "$ROUNDS"); do
  for plan in "2 1 1" "1 2 1" "2 1 2" "1 2 2"; do
    read -r workers threads queue <<< "$plan"
    name=sched-$SIZE-w${workers}t${threads}-q$queue-r$round
    echo "$name $(python docs/benchmarks/issue21/probe.py)" >> "$OUT/probes.txt"
    echo "== $name (load $(cut -d' ' -f1 /proc/loadavg), probe $(tail -1 "$OUT/probes.txt" | cut -d' ' -f2-))"
    python -m app.bench --live "$SIZE" --seconds "${SECS:-10}" --backend onnxruntime-cpu --checkpoint models/weights/default.pt \
      --inference-workers "$workers" --threads "$threads" --queue-size "$queue" \
      --json "$OUT/$name.json" | tee -a "$OUT/runs.log" | sed -n 1,2p
  done
done
