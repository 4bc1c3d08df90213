"""Speed/accuracy trade-off table: width/depth vs CPU latency vs IoU (``python -m training.tradeoff``).

For each trained checkpoint: its architecture, ONNX Runtime latency at the checkpoint's input
size (batch 1, same process, same frame, so the rows are comparable) and pooled IoU/Dice on a
held-out data set via :func:`training.evaluate.evaluate_checkpoint`. Prints a markdown table and
writes JSON.

    python -m training.tradeoff --data data/heldout --json docs/benchmarks/tradeoff.json \\
        runs/tradeoff-w4/best.pt runs/tradeoff-w8/best.pt runs/tradeoff-w16/best.pt
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends import create_backend
from engine.bench import environment, percentile, time_backend
from models.atomic_io import atomic_write_text
from models.checkpoint import load_checkpoint
from models.unet import count_parameters
from training.evaluate import evaluate_checkpoint


def measure(
    checkpoint: Path, data: Path, backend: str, iterations: int, frame_step: int
) -> dict[str, Any]:
    """Architecture, latency and held-out accuracy of one checkpoint."""
    model, meta = load_checkpoint(checkpoint)
    height, width = meta.input_size
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with create_backend(checkpoint, backend) as runner:
        times = time_backend(runner, frame, iterations, budget_s=60.0)
        backend_name = runner.describe()
    report = evaluate_checkpoint(checkpoint, data, frame_step=frame_step, grid_frames=0)
    overall = report["overall"]
    median = statistics.median(times)
    return {
        "checkpoint": str(checkpoint),
        "base_width": meta.config.base_width,
        "depth": meta.config.depth,
        "upsample": meta.config.upsample,
        "params_m": round(count_parameters(model) / 1e6, 3),
        "input_size": f"{height}x{width}",
        "backend": backend_name,
        "median_ms": round(median, 2),
        "p95_ms": round(percentile(times, 95), 2),
        "fps": round(1e3 / median, 1),
        "iou": round(overall["iou"], 4),
        "dice": round(overall["dice"], 4),
        "training_minutes": round(meta.training.get("seconds", 0.0) / 60.0, 1),
        "epochs": meta.training.get("epochs_completed", meta.training.get("epochs")),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`measure` rows."""
    lines = [
        "| width | depth | params (M) | input | median ms | p95 ms | frames/s | IoU | Dice "
        "| train min (this run, to best epoch) | checkpoint |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['base_width']} | {r['depth']} | {r['params_m']:.2f} | {r['input_size']} | {r['median_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['fps']:.1f} | {r['iou']:.3f} | {r['dice']:.3f} | {r['training_minutes']} | "
            f"{r['checkpoint']} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m training.tradeoff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="trained checkpoints to compare")
    parser.add_argument("--data", type=Path, required=True, help="held-out data set (never used in training)")
    parser.add_argument("--backend", default="onnxruntime-cpu", help="backend to time (default onnxruntime-cpu)")
    parser.add_argument("--iterations", type=int, default=100, help="timed calls per checkpoint")
    parser.add_argument("--frame-step", type=int, default=1, help="evaluate every Nth frame")
    parser.add_argument("--json", type=Path, help="write the rows and the environment here")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    rows = [measure(path, args.data, args.backend, args.iterations, args.frame_step) for path in args.checkpoints]
    table = format_table(rows)
    print(table)
    if args.json:
        command = "python -m training.tradeoff " + shlex.join(argv if argv is not None else sys.argv[1:])
        payload = {"command": command, "environment": environment(), "rows": rows, "table": table}
        atomic_write_text(args.json, json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
