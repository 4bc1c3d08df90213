"""Training throughput on this machine: the network step in each precision, and the augmentation that feeds it.

    python -m training.step_bench --widths 8 16 --json docs/benchmarks/train-step-cpu.json

For each base width it times the real training step (``FrameSegmenter``, the training loss, AdamW) on
random ``uint8`` frames at the training input size in fp32, fp32 + channels_last and bf16 autocast +
channels_last (and fp16 on CUDA), interleaved round by round so that a noisy machine affects every
variant alike, and reports the median frames/s of the rounds. It also times the ``--augment`` preset
on one core (the loader's share when the step has the others), so one can see whether the data path or
the network limits a training run. It prints what ``--precision auto`` would choose here and why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.atomic_io import atomic_write_text
from models.checkpoint import ModelMeta, build_segmenter
from models.cpu import cpu_flags, cpu_identity
from models.sizes import parse_size
from models.unet import preset
from training.augment import AUGMENT_PRESETS, augment, augment_preset
from training.losses import segmentation_loss
from training.precision import Precision, resolve_precision

#: (label, precision name, channels_last)
VARIANTS = (("fp32", "fp32", False), ("fp32+channels_last", "fp32", True), ("bf16+channels_last", "bf16", True))


def _model(width: int, size: tuple[int, int], device: torch.device, channels_last: bool) -> torch.nn.Module:
    meta = ModelMeta(config=replace(preset("fast"), base_width=width), input_height=size[0], input_width=size[1])
    model = build_segmenter(meta).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def time_steps(model: torch.nn.Module, precision: Precision, frames: torch.Tensor, masks: torch.Tensor, steps: int) -> float:
    """Median seconds of ``steps`` training steps (forward, loss, backward, AdamW) after one warm-up step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with precision.autocast():
            logits = model(frames)
        loss = segmentation_loss(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if frames.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def time_augment(preset_name: str, size: tuple[int, int], count: int, seed: int = 0) -> float:
    """Frames/s of the ``preset_name`` augmentation on one thread (OpenCV limited to one thread too)."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : height // 2, width // 4 :] = 1
    config = augment_preset(preset_name)
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = time.perf_counter()
        for i in range(count):
            augment(image, mask, np.random.default_rng([seed, i]), config)
        return count / (time.perf_counter() - start)
    finally:
        cv2.setNumThreads(previous)


def run(widths: Sequence[int], size: tuple[int, int], batch: int, steps: int, rounds: int, device: torch.device) -> dict[str, Any]:
    """Frames/s of each (width, variant), the median over ``rounds`` interleaved rounds."""
    variants = list(VARIANTS) + ([("fp16", "fp16", False)] if device.type == "cuda" else [])
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch, *size, 3), dtype=torch.uint8, generator=generator).to(device)
    masks = (torch.rand((batch, 1, *size), generator=generator) > 0.7).float().to(device)
    samples: dict[tuple[int, str], list[float]] = {}
    for round_index in range(rounds):
        for width in widths:
            for label, name, channels_last in variants:
                torch.manual_seed(round_index)
                model = _model(width, size, device, channels_last)
                seconds = time_steps(model, Precision(name, device.type), frames, masks, steps)
                samples.setdefault((width, label), []).append(batch / seconds)
                print(f"round {round_index + 1}/{rounds}  width {width:2d}  {label:20s} {batch / seconds:7.1f} frames/s", flush=True)
    rows = []
    for width in widths:
        base = statistics.median(samples[(width, "fp32")])
        for label, _, _ in variants:
            fps = statistics.median(samples[(width, label)])
            rows.append({"width": width, "variant": label, "frames_per_s": round(fps, 2),
                         "runs": [round(v, 2) for v in samples[(width, label)]], "speedup_vs_fp32": round(fps / base, 2)})
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.step_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16], help="U-Net base widths (preset fast otherwise)")
    parser.add_argument("--input-size", type=parse_size, default=(256, 320), help="HEIGHTxWIDTH (default 256x320)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per measurement (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--augment", default="footage+negatives", choices=AUGMENT_PRESETS, help="preset timed on one core")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    auto = resolve_precision("auto", device)
    print(f"--precision auto here: {auto.name} ({auto.reason})", flush=True)
    result = run(args.widths, args.input_size, args.batch_size, args.steps, args.rounds, device)
    augment_fps = time_augment(args.augment, args.input_size, 40)
    print(f"augmentation {args.augment!r} on one core: {augment_fps:.1f} frames/s", flush=True)
    for row in result["rows"]:
        print(f"width {row['width']:2d}  {row['variant']:20s} {row['frames_per_s']:7.1f} frames/s  x{row['speedup_vs_fp32']:.2f} vs fp32")
    report = {
        "command": "python -m training.step_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_model": cpu_identity(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "bf16_flags": sorted({"avx512_bf16", "amx_bf16"} & cpu_flags()), "loadavg": list(_loadavg())},
        "auto_precision": {"name": auto.name, "reason": auto.reason},
        "input_size": list(args.input_size), "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds,
        "augment": {"preset": args.augment, "frames_per_s_one_core": round(augment_fps, 1)},
        **result,
    }
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


if __name__ == "__main__":
    raise SystemExit(main())
