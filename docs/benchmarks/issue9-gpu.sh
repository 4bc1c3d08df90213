#!/usr/bin/env bash
# Issue 9 on a lent CUDA machine, from the repository root:
#   OUT=DIR REAL=DIR bash docs/benchmarks/issue9-gpu.sh 2>&1 | tee "$OUT/session.log"
# Trains the shipped `fast` U-Net on real + generated frames with the CPU recipe of the model card
# (footage+negatives, fine-tuned from synthetic-only.pt, validation on ROBUST-MIS prokto3/rektum3 and
# generated videos, best epoch and threshold by the mean per-data-set IoU) for a GPU budget. VARIANTS picks
# the runs, trained side by side on the one GPU with the CPU cores shared between their loaders:
#   a: --data-weights 2 1 1 (half real, as in the CPU run)    b: --data-weights 1 1 1 (a third real)
# REAL is a folder named `robustmis` holding the ROBUST-MIS `images/` + `masks/` of ../shared/realtrain, or
# a copy of them outside the repository resized to the 256x320 training input (what the lent machine's
# transfer limit required); they never enter the repository. Only the generated data is made here (same
# seeds as the model card, more videos: per-video seeds depend only on the data set seed and the video number, so the first
# 60/29 videos are the model card's). Results land in $OUT: session.log, a/ and b/ (best.pt, metrics.json,
# train.log). realdev is scored afterwards on the project machine, never here.
# Overridable: VARIANTS (default "a b"; "b" gives one run the whole machine), INIT (checkpoint to
# fine-tune), LR, DATA, AUGMENT (default footage+negatives; see training/augment.py). SMOKE=1 runs the same steps at toy sizes on the CPU.
set -u -o pipefail
: "${OUT:?set OUT to the folder for the results}"
: "${REAL:?set REAL to the robustmis folder (images/ + masks/)}"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
LIMIT=${GPU_SESSION_SECONDS:-540}  # wall-clock seconds for the whole script
SMOKE=${SMOKE:-0}
CORES=$(nproc)
DATA=${DATA:-data/gpu9}  # generated data sets (synth_a, synth_x) go here
VARIANTS=${VARIANTS:-a b}  # which of the two runs; one alone gets all the cores
INIT=${INIT:-models/weights/synthetic-only.pt} LR=${LR:-2e-3} AUGMENT=${AUGMENT:-footage+negatives}
mkdir -p "$OUT"
left() { echo $((LIMIT - SECONDS)); }

if [ "$SMOKE" = 1 ]; then
  VIDEOS_A=3 VIDEOS_X=2 FRAMES=3 BATCH=4 SAMPLES=24 RESERVE=${RESERVE:-10}
  VAL=robustmis/prokto3,robustmis/rektum3,synth_a/Video_01,synth_x/Video_01
else
  VIDEOS_A=100 VIDEOS_X=60 FRAMES=20 BATCH=32 SAMPLES=16000 RESERVE=${RESERVE:-25}
  VAL=robustmis/prokto3,robustmis/rektum3,synth_a/Video_05,synth_a/Video_020,synth_a/Video_035,synth_a/Video_050,synth_x/Video_07,synth_x/Video_021
fi

echo "== environment ($(date -u +%FT%TZ), ${CORES} cores)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
python3 -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), 'opencv', cv2.__version__, 'numpy', numpy.__version__)"
ls "$REAL/images" | wc -l

echo "== generate (left $(left) s)"
python3 -m training.generate dataset --out "$DATA/synth_a" --videos "$VIDEOS_A" --frames "$FRAMES" --seed 3000 \
  --workers "$CORES" --no-progress || exit 1
python3 -m training.generate dataset --out "$DATA/synth_x" --videos "$VIDEOS_X" --frames "$FRAMES" --seed 4000 \
  --extended-instruments --workers "$CORES" --no-progress || exit 1

MINUTES=$(python3 -c "print(round(max(0.1, ($(left) - $RESERVE) / 60), 2))")
read -r -a NAMES <<< "$VARIANTS"
SHARE=$((CORES / ${#NAMES[@]}))  # CPU cores for each run's cache and loader
echo "== train ${VARIANTS} side by side for ${MINUTES} min each (left $(left) s)"
train() {  # train NAME WEIGHTS...
  local name=$1; shift
  python3 -m training.train --data "$REAL" "$DATA/synth_a" "$DATA/synth_x" --data-weights "$@" \
    --epoch-samples "$SAMPLES" --epochs 100000 --max-train-minutes "$MINUTES" --anneal-to-budget --warmup-steps 300 \
    --augment "$AUGMENT" --init-from "$INIT" --out "runs/gpu9_$name" \
    --batch-size "$BATCH" --lr "$LR" --workers "$SHARE" --loader-workers $((SHARE > 2 ? SHARE - 1 : 1)) --patience 0 \
    --seed 0 --val-videos "$VAL" > "$OUT/train-$name.log" 2>&1
  echo "training $name ended with status $?"
}
pids=()
for name in "${NAMES[@]}"; do
  case $name in
    a) train a 2 1 1 & ;;
    b) train b 1 1 1 & ;;
    *) echo "unknown variant $name (expected a or b)"; exit 2 ;;
  esac
  pids+=($!)
done
wait "${pids[@]}"
for name in "${NAMES[@]}"; do
  mkdir -p "$OUT/$name"
  tail -n 25 "$OUT/train-$name.log"
  cp "runs/gpu9_$name/best.pt" "runs/gpu9_$name/metrics.json" "$OUT/$name/" \
    || echo "copy of $name failed"
  cat "$OUT/train-$name.log" >> "$OUT/$name/train.log" && rm -f "$OUT/train-$name.log"
done
echo "== done in ${SECONDS} s"
