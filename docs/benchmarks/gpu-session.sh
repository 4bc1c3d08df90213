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
