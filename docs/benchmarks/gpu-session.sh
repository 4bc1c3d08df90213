#!/usr/bin/env bash
# One short session on a lent CUDA machine, from the repository root:
#   OUT=DIR bash docs/benchmarks/gpu-session.sh
# 1. engine.gpu_check: torch CUDA FP16 (with and without CUDA graphs) parity and latency;
#    TensorRT / ONNX Runtime GPU rows where installed; 1b. where TensorRT is importable, `engine verify` and
#    `engine bench` with tensorrt (engine-verify-tensorrt.json, engine-bench-tensorrt.json);
# 2. generates a fresh synthetic set with the project's generator (seed 5000, never the held-out seed 1000);
# 3. fine-tunes the shipped model on it on the GPU for what is left of the session's time budget,
#    with the cosine decay following that budget (--anneal-to-budget);
# 4. app.bench with the torch-cuda backend on the new weights, if time is left.
# Everything it keeps lands flat in $OUT (session.log, gpu_check.json/.md, best.pt, metrics.json,
# curves.png, app-bench-gpu.json). SMOKE=1 runs the same steps at toy sizes (for a CPU dry run).
#
# ISSUE12=1 runs the issue-12 session instead (its own section below, then exits): parity and FP16 latency
# of the fast and the larger model, the live latency bench at 720p60 and 1080p60 (CUDA graphs on/off,
# recording on/off), and training of the larger model for what is left of the budget.
set -u -o pipefail
: "${OUT:?set OUT to the folder for the results}"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
LIMIT=${GPU_SESSION_SECONDS:-560}  # wall-clock seconds for the whole script
SMOKE=${SMOKE:-0}
CORES=$(nproc)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
left() { echo $((LIMIT - SECONDS)); }

# Overridable for a follow-up round: INIT (checkpoint to fine-tune), DATA_SEED, VIDEOS, LR, CHECK_ARGS,
# RESERVE (seconds kept after training), APP_BENCH=0.
INIT=${INIT:-models/weights/default.pt} DATA_SEED=${DATA_SEED:-5000} LR=${LR:-2e-3} APP_BENCH=${APP_BENCH:-1}
RESERVE=${RESERVE:-100}  # threshold pick, copies and the app bench
if [ "$SMOKE" = 1 ]; then
  VIDEOS=${VIDEOS:-4} FRAMES=6 VAL=1 BATCH=4 CHECK_ARGS=${CHECK_ARGS:---models fast --sizes 256x320 --budget 0.5}
  BENCH=(--frames 10) TRT_BENCH=(--models fast --sizes 256x320 --budget 0.5)
else
  VIDEOS=${VIDEOS:-240} FRAMES=40 VAL=12 BATCH=32 CHECK_ARGS=${CHECK_ARGS:---budget 1} BENCH=(--frames 150)
  TRT_BENCH=(--models fast,classic --sizes 256x320,512x640 --budget 1)
fi
read -r -a CHECK <<< "$CHECK_ARGS"

echo "== environment ($(date -u +%FT%TZ), ${CORES} cores)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
python3 -c "import torch, cv2, numpy, onnxruntime; print('python', __import__('sys').version.split()[0], \
'torch', torch.__version__, 'cuda', torch.version.cuda, 'opencv', cv2.__version__, 'numpy', numpy.__version__, \
'onnxruntime', onnxruntime.__version__)"

# ---------------------------------------------------------------------------------------------------------
# Issue 12: capture → overlay latency at 1080p60, and a larger model for GPU backends. ISSUE12=1 only.
# Interface used (app.bench --live: app/bench/live.py on app/sources/live.py, app/core/stage_timer.py, app/gpu/stage.py):
#   python -m app.bench --live 1080p60 --seconds S --json FILE [--backend B] [--checkpoint CK]
#                       [--cuda-graphs | --no-cuda-graphs] [--record FILE.mp4]
# A run whose option the installed app.bench does not list in --help is skipped (--cuda-graphs alone is
# then left out: the default), and a missing --live skips the live bench, so the rest still runs (and
# SMOKE=1 stays a CPU dry run). Full run: about 60 s checks, 8 live runs of LIVE_SECONDS + start-up,
# 60 s generation, then training for what is left minus LARGE_RESERVE.
# Outputs in $OUT: gpu_check.json/.md, live-<size>-<graphs|nographs>[-rec].json (+ .log), issue12-large/
# (best.pt, metrics.json, curves.png), live-1080p60-large.json. Overridable: LIVE_SECONDS, LIVE_SIZES,
# LARGE_ARGS (model options for training.train), LARGE_INIT (checkpoint to continue from), LARGE_RESERVE,
# SEED12 (data seed, default 7000: never the held-out 1000 nor the 5000 of the shipped model's stage 5).
if [ "${ISSUE12:-0}" = 1 ]; then
  if [ "$SMOKE" = 1 ]; then
    LIVE_SIZES=${LIVE_SIZES:-360p30} LIVE_SECONDS=${LIVE_SECONDS:-2} VIDEOS=${VIDEOS:-4} FRAMES=6 VAL=1 BATCH=4
    LARGE_ARGS=${LARGE_ARGS:---model balanced --width 4 --input-size 64x80}
    CHECK12=(--models fast --sizes 64x80 --budget 0.2)
  else
    LIVE_SIZES=${LIVE_SIZES:-720p60 1080p60} LIVE_SECONDS=${LIVE_SECONDS:-8} VIDEOS=${VIDEOS:-160} FRAMES=40 VAL=8 BATCH=32
    LARGE_ARGS=${LARGE_ARGS:---model balanced --input-size 320x384}
    CHECK12=(--models fast,balanced --sizes 256x320,320x384 --budget 0.5)
  fi
  LARGE_RESERVE=${LARGE_RESERVE:-45}  # seconds kept after training: copies and one live bench of the larger model
  read -r -a LARGE <<< "$LARGE_ARGS"
  backend=torch-cuda
  python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || backend=auto
  help_text=$(python3 -m app.bench --help 2>&1)
  has() { grep -qE -- "(^|[^-a-z])$1([^-a-z]|\$)" <<< "$help_text"; }  # the exact option in app.bench --help

  # live NAME SIZE EXTRA...: one live bench run, JSON and log in $OUT
  live() {
    local name=$1 size=$2; shift 2
    local args=(--live "$size" --seconds "$LIVE_SECONDS" --backend "$backend" --json "$OUT/live-$name.json") extra=()
    while [ $# -gt 0 ]; do
      case $1 in
        --record) if has --record; then extra+=(--record "$OUT/rec-$name.mp4"); else echo "   skipped $name: app.bench has no --record"; return; fi ;;
        --no-cuda-graphs) if has "$1"; then extra+=("$1"); else echo "   skipped $name: app.bench has no $1"; return; fi ;;
        --cuda-graphs) if has "$1"; then extra+=("$1"); else echo "   ($name: app.bench has no $1; its default)"; fi ;;
        *) extra+=("$1") ;;
      esac
      shift
    done
    echo "-- live $name: ${args[*]} ${extra[*]} (left $(left) s)"
    timeout $((LIVE_SECONDS + 60)) python3 -m app.bench "${args[@]}" "${extra[@]}" > "$OUT/live-$name.log" 2>&1 \
      || echo "   live $name ended with status $?"
    tail -n 15 "$OUT/live-$name.log"
    rm -f "$OUT/rec-$name.mp4"  # the recording is only there to load the encoder; keep $OUT small
  }

  echo "== 12.1 parity and FP16 latency, fast and larger model (left $(left) s)"
  timeout 90 python3 -m engine.gpu_check --out "$OUT" "${CHECK12[@]}" || echo "gpu_check ended with status $?"

  echo "== 12.2 live latency bench: ${LIVE_SIZES}, ${LIVE_SECONDS} s each, backend $backend (left $(left) s)"
  if has --live; then
    for size in $LIVE_SIZES; do
      live "$size-graphs" "$size" --cuda-graphs
      live "$size-nographs" "$size" --no-cuda-graphs
      live "$size-graphs-rec" "$size" --cuda-graphs --record
      live "$size-nographs-rec" "$size" --no-cuda-graphs --record
    done
  else
    echo "   skipped: this app.bench has no --live (issue 12 not wired yet)"
  fi

  echo "== 12.3 generate (left $(left) s)"
  python3 -m training.generate dataset --out data/synthetic_issue12 --videos "$VIDEOS" --frames "$FRAMES" \
    --seed "${SEED12:-7000}" --workers "$CORES" --no-progress || exit 1

  MINUTES=$(python3 -c "print(round(max(0.1, ($(left) - $LARGE_RESERVE) / 60), 2))")
  echo "== 12.4 train the larger model (${LARGE_ARGS}) for ${MINUTES} min (left $(left) s)"
  init=()
  [ -n "${LARGE_INIT:-}" ] && init=(--init-from "$LARGE_INIT")
  python3 -m training.train --data data/synthetic_issue12 --out runs/issue12_large "${LARGE[@]}" "${init[@]}" \
    --epochs 100000 --batch-size "$BATCH" --lr "${LARGE_LR:-3e-3}" --warmup-steps 300 --val-videos "$VAL" \
    --workers "$CORES" --loader-workers $((CORES > 2 ? CORES - 2 : 1)) --seed 0 --patience 0 --ema 0.999 \
    --max-train-minutes "$MINUTES" --anneal-to-budget
  status=$?
  mkdir -p "$OUT/issue12-large"
  cp runs/issue12_large/best.pt runs/issue12_large/metrics.json runs/issue12_large/curves.png "$OUT/issue12-large/" \
    || echo "copy failed"
  [ $status = 0 ] || echo "training ended with status $status"

  if has --live && [ -f "$OUT/issue12-large/best.pt" ] && [ "$(left)" -gt $((LIVE_SECONDS + 20)) ]; then
    echo "== 12.5 live bench of the larger model (left $(left) s)"
    last_size=${LIVE_SIZES##* }
    live "$last_size-large" "$last_size" --checkpoint "$OUT/issue12-large/best.pt" --cuda-graphs
  fi
  echo "== done in ${SECONDS} s"
  exit 0
fi
# ---------------------------------------------------------------------------------------------------------

echo "== 1. GPU check (left $(left) s)"
timeout 150 python3 -m engine.gpu_check --out "$OUT" "${CHECK[@]}" || echo "gpu_check ended with status $?"

# 1b. TensorRT, whenever it is importable (with a runtime, not only type stubs): parity and latency through the
# engine CLI, so the first lent GPU that has it produces figures without further work.
if python3 -c "import tensorrt; tensorrt.Builder" 2>/dev/null; then
  echo "== 1b. TensorRT $(python3 -c 'import tensorrt; print(tensorrt.__version__)'): engine verify + bench (left $(left) s)"
  timeout 240 python3 -m engine -v verify --backends tensorrt,tensorrt/fp32,torch-cuda \
    --json "$OUT/engine-verify-tensorrt.json" || echo "engine verify ended with status $?"
  timeout 240 python3 -m engine -v bench --backends tensorrt,torch-cuda,torch-cuda+graphs "${TRT_BENCH[@]}" \
    --json "$OUT/engine-bench-tensorrt.json" || echo "engine bench ended with status $?"
else
  echo "== 1b. TensorRT is not importable here: engine verify/bench with tensorrt skipped"
fi

echo "== 2. generate (left $(left) s)"
python3 -m training.generate dataset --out data/synthetic_gpu --videos "$VIDEOS" --frames "$FRAMES" --seed "$DATA_SEED" \
  --workers "$CORES" --no-progress || exit 1

MINUTES=$(python3 -c "print(round(max(0.1, ($(left) - $RESERVE) / 60), 2))")
echo "== 3. train for ${MINUTES} min (left $(left) s)"
python3 -m training.train --data data/synthetic_gpu --out runs/gpu_ft --init-from "$INIT" \
  --epochs 100000 --batch-size "$BATCH" --lr "$LR" --warmup-steps 300 --val-videos "$VAL" --workers "$CORES" \
  --loader-workers $((CORES > 2 ? CORES - 2 : 1)) --seed 0 --patience 0 --ema 0.999 \
  --max-train-minutes "$MINUTES" --anneal-to-budget
status=$?
cp runs/gpu_ft/best.pt runs/gpu_ft/metrics.json runs/gpu_ft/curves.png "$OUT/" || echo "copy failed"
[ $status = 0 ] || echo "training ended with status $status"

if [ "$APP_BENCH" = 1 ] && [ "$(left)" -gt 40 ]; then
  echo "== 4. app bench, torch-cuda (left $(left) s)"
  backend=torch-cuda
  python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || backend=auto
  timeout $(($(left) - 10)) python3 -m app.bench --checkpoint "$OUT/best.pt" --backend "$backend" --sizes 720p \
    "${BENCH[@]}" --json "$OUT/app-bench-gpu.json" || echo "app bench ended with status $?"
fi
echo "== done in ${SECONDS} s"
