"""One-shot GPU check for a session that has a CUDA device: ``python -m engine.gpu_check --out DIR``.

1. parity of PyTorch CUDA FP16 (with and without CUDA graphs), TensorRT and ONNX Runtime GPU
   against PyTorch CPU FP32 on drawn frames (random calibrated ``fast`` model);
2. latency of every size with and without CUDA graphs (plus TensorRT / ONNX Runtime GPU when
   installed) for the ``fast`` and ``classic`` presets.

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out``. Without CUDA it still runs (the
CPU reference and ONNX Runtime CPU rows), says clearly that the CUDA parts were skipped, and
exits 0, so the script itself is tested on CPU-only machines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from engine.bench import DEFAULT_SIZES, environment, format_bench, run_bench
from engine.parity import format_parity, verify
from engine.specs import BackendSpec
from engine.synthetic import random_model
from models.atomic_io import atomic_write_text
from models.checkpoint import save_checkpoint
from models.sizes import parse_sizes
from models.unet import preset

GPU_SPECS = ["torch-cuda", "torch-cuda+graphs", "torch-cuda/fp32", "tensorrt", "onnxruntime-tensorrt",
             "onnxruntime-cuda"]
CPU_SPECS = ["onnxruntime-cpu"]


def run_check(out: Path, models: list[str], sizes: list[tuple[int, int]], iterations: int, budget_s: float,
              parity_size: tuple[int, int] = (256, 320)) -> dict[str, Any]:
    """Run parity and timing; write ``gpu_check.json`` / ``gpu_check.md`` into ``out``; return the report."""
    started = time.time()
    cuda = torch.cuda.is_available()
    messages = [] if cuda else ["no CUDA device: CUDA parity and timings skipped (CPU rows only)"]
    specs = [BackendSpec.parse(s) for s in (GPU_SPECS if cuda else CPU_SPECS)]
    with tempfile.TemporaryDirectory(prefix="surgseg-gpu-check-") as tmp:
        model, meta = random_model(preset("fast"), parity_size, seed=0)
        checkpoint = save_checkpoint(Path(tmp) / "fast.pt", model, meta)
        parity = verify(checkpoint, specs + ([BackendSpec.parse("onnxruntime-cpu/fp16")] if not cuda else []))
    timing = run_bench(specs, models, sizes, iterations=iterations, budget_s=budget_s)
    report = {
        "environment": environment(),
        "messages": messages,
        "parity": [row.to_dict() for row in parity],
        "timing": [row.to_dict() for row in timing],
        "seconds": round(time.time() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "gpu_check.json", json.dumps(report, indent=2))
    markdown = [
        "# GPU check", "", *(f"**{m}**" for m in messages), "",
        "```", json.dumps(report["environment"], indent=1), "```", "",
        "## Parity vs PyTorch CPU FP32", "", "```", format_parity(parity), "```", "",
        "## Latency (batch 1)", "", format_bench(timing), "",
    ]
    atomic_write_text(out / "gpu_check.md", "\n".join(markdown))
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m engine.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu_check.json and gpu_check.md")
    parser.add_argument("--models", default="fast,classic")
    parser.add_argument("--sizes", help="comma-separated HxW; default 256x320,512x640,538x701")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--budget", type=float, default=3.0, help="timed seconds per combination")
    args = parser.parse_args(argv)
    report = run_check(args.out, [m for m in args.models.split(",") if m],
                       parse_sizes(args.sizes) if args.sizes else list(DEFAULT_SIZES), args.iterations, args.budget)
    for message in report["messages"]:
        print(message)
    print((args.out / "gpu_check.md").read_text())
    return 1 if any(row["status"] == "FAIL" for row in report["parity"]) else 0


if __name__ == "__main__":
    sys.exit(main())
