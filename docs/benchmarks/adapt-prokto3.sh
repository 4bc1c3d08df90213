#!/usr/bin/env bash
# The README's "Adapt it to your footage" example: adapt the shipped default on 20 labelled frames of one
# ROBUST-MIS operation it never trained on (prokto3, a validation operation), then score before and after on
# that operation's other 101 frames. The frames are read from ../shared/realtrain at run time through links in
# a scratch folder (never copied into the repository); picture grids stay in runs/ (they show real frames).
#   bash docs/benchmarks/adapt-prokto3.sh            # about 12 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/../.."
REAL=${REAL:-../shared/realtrain/robustmis}
WORK=${WORK:-runs/adapt-example}
OUT=docs/benchmarks/adapt-prokto3
rm -rf "$WORK" && mkdir -p "$WORK"/{prokto3-20,prokto3-rest}/{images,masks}
python - "$REAL" "$WORK" <<'PY'
import os, re, sys
from pathlib import Path
real, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
natural = lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
names = sorted((p.name for p in (real / "images").glob("prokto3_*")), key=natural)
step = len(names) / 20
picked = {names[int(i * step + step / 2)] for i in range(20)}   # 20 frames evenly spread over the operation
for name in names:
    folder = work / ("prokto3-20" if name in picked else "prokto3-rest")
    stem = name.rsplit(".", 1)[0]
    os.symlink(real / "images" / name, folder / "images" / name)
    os.symlink(real / "masks" / f"{stem}.png", folder / "masks" / f"{stem}.png")
print(f"{len(picked)} frames to adapt on, {len(names) - len(picked)} to score")
PY
python -m training.adapt --data "$WORK/prokto3-20" --minutes 10 --out "$WORK/adapted"
for model in models/weights/default.pt "$WORK/adapted/model.pt"; do
  name=$([ "$model" = models/weights/default.pt ] && echo before || echo after)
  python -m training.evaluate --checkpoint "$model" --data "$WORK/prokto3-rest" --group-by '' --out "$WORK/eval-$name"
done
python -m training.evaluate --checkpoint models/weights/default.pt --data "$WORK/prokto3-rest" --group-by '' --threshold 0.1 \
  --out "$WORK/eval-before-at-0.10"
mkdir -p "$OUT"
cp "$WORK/adapted/report.json" "$WORK/adapted/report.md" "$OUT/"
for e in before after before-at-0.10; do cp "$WORK/eval-$e/report.json" "$OUT/eval-rest-$e.json"; done
