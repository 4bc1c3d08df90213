#!/bin/bash
# Before/after `python -m app.bench`, back to back on one machine, alternating trees each round.
# Usage: git worktree add --detach /tmp/base <old commit>; docs/benchmarks/app-bench-before-after.sh /tmp/base . OUTDIR
# (issue 10: base 4a6f722 vs issue-arch; results in app-bench-stages-before-after.json)
set -e
before=$1 after=$2 out=${3:-/tmp/app-bench-before-after}
mkdir -p "$out"
for round in ${ROUNDS:-1 2 3 4 5}; do
  for tree in before after; do
    dir=$before; [ "$tree" = after ] && dir=$after
    (cd "$dir" && python -m app.bench --sizes 720p --frames 100 --json "$out/$tree-$round.json") > "$out/$tree-$round.log" 2>&1
    grep -E '^720p ' "$out/$tree-$round.log" | sed "s/^/$tree round $round: /"
  done
done
