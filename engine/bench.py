"""Latency benchmark of backends × models × input sizes (``python -m engine bench``).

Speed does not depend on the weights, so without ``--checkpoint`` each preset is built with
random weights (fixed seed: the exported ONNX and TensorRT engines stay cached between runs).
Sizes that are not a multiple of the model's ``size_multiple`` (``2**depth``) are rounded up
(538×701 → 544×704): the exported graph has a fixed input size and the U-Net would pad to
that multiple internally anyway. The output says so.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from engine.backends.base import BackendUnavailable
from engine.model_source import load_model_source
from engine.specs import BackendSpec
from engine.synthetic import draw_frames, random_model
from models.checkpoint import ModelMeta, save_checkpoint
from models.cpu import cpu_identity
from models.percentiles import percentile
from models.unet import count_parameters, preset

DEFAULT_SIZES = ((256, 320), (512, 640), (538, 701))


@dataclass
class BenchRow:
    """One backend × model × size measurement."""

    model: str
    params_m: float
    backend: str
    requested: str
    size: str
    status: str  # "ok" or "skipped"
    iterations: int = 0
    median_ms: float | None = None
    p95_ms: float | None = None
    fps: float | None = None
    load_s: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def adjust_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Round ``height``×``width`` up to a multiple of ``multiple``."""
    if height < 1 or width < 1:
        raise ValueError(f"sizes must be positive, got {height}x{width}")
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def time_backend(backend: Any, frame: np.ndarray, iterations: int, budget_s: float) -> list[float]:
    """Per-call latencies (ms) of ``backend.infer`` on one frame: one warm-up (three if fast), then up
    to ``iterations`` calls or until ``budget_s`` is spent (at least 3)."""
    batch = frame[None]
    start = time.perf_counter()
    backend.infer(batch)
    if time.perf_counter() - start < 0.2:
        for _ in range(2):
            backend.infer(batch)
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < iterations and (len(times) < 3 or time.perf_counter() - began < budget_s):
        tick = time.perf_counter()
        backend.infer(batch)
        times.append((time.perf_counter() - tick) * 1e3)
    return times


def model_for(name: str, size: tuple[int, int], workdir: Path, checkpoint: Path | None) -> tuple[Path, ModelMeta, int]:
    """A checkpoint of preset ``name`` (random weights) or of ``checkpoint`` at ``size``; returns path, meta, params."""
    if checkpoint is not None:
        model, meta = load_model_source(checkpoint)
        meta = replace(meta, input_height=size[0], input_width=size[1])
    else:
        model, meta = random_model(preset(name), size, seed=0, calibrate=False)
    path = workdir / f"{name}-{size[0]}x{size[1]}.pt"
    save_checkpoint(path, model, meta)
    return path, meta, count_parameters(model)


def run_bench(
    specs: list[BackendSpec],
    models: list[str],
    sizes: list[tuple[int, int]],
    iterations: int = 30,
    budget_s: float = 2.0,
    checkpoint: Path | None = None,
    log: Any = print,
) -> list[BenchRow]:
    """Measure every available spec for every model and size; unavailable specs give one ``skipped`` row each."""
    rows: list[BenchRow] = []
    runnable = []
    for spec in specs:
        reason = spec.unavailable()
        if reason:
            rows.append(BenchRow("*", 0.0, str(spec), "*", "*", "skipped", note=reason))
        else:
            runnable.append(spec)
    with tempfile.TemporaryDirectory(prefix="surgseg-bench-") as tmp:
        for model_name in models:
            label = "checkpoint" if checkpoint is not None else model_name
            config = load_model_source(checkpoint)[1].config if checkpoint is not None else preset(model_name)
            for requested in sizes:
                size = adjust_size(*requested, config.size_multiple)
                note = "" if size == requested else (
                    f"{requested[0]}x{requested[1]} rounded up to {size[0]}x{size[1]} "
                    f"(multiple of {config.size_multiple})"
                )
                if note:
                    log(f"note: {label}: {note}")
                path, _, params = model_for(label, size, Path(tmp), checkpoint)
                frame = draw_frames(1, *size, seed=1)[0]
                for spec in runnable:
                    tick = time.perf_counter()
                    try:
                        backend = spec.create(path)
                    except BackendUnavailable as error:
                        rows.append(BenchRow(label, params / 1e6, str(spec), "x".join(map(str, requested)),
                                             f"{size[0]}x{size[1]}", "skipped", note=str(error)))
                        continue
                    with backend:
                        load_s = time.perf_counter() - tick
                        times = time_backend(backend, frame, iterations, budget_s)
                    median = statistics.median(times)
                    row = BenchRow(
                        label, round(params / 1e6, 2), str(spec), f"{requested[0]}x{requested[1]}",
                        f"{size[0]}x{size[1]}", "ok", len(times), round(median, 2),
                        round(percentile(times, 95), 2), round(1e3 / median, 1), round(load_s, 2), note,
                    )
                    rows.append(row)
                    log(f"{label:10} {row.backend:22} {row.size:9} median {row.median_ms:9.2f} ms  "
                        f"p95 {row.p95_ms:9.2f} ms  {row.fps:7.1f} frames/s  (n={row.iterations})")
    return rows


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with results."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_identity": cpu_identity(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import tensorrt

        info["tensorrt"] = getattr(tensorrt, "__version__", None)
    except Exception:  # ImportError, or OSError when the TensorRT libraries are missing
        info["tensorrt"] = None
    return info


def format_bench(rows: list[BenchRow]) -> str:
    """Markdown table."""
    lines = [
        "| model | params (M) | backend | size | median ms | p95 ms | frames/s | n | note |",
        "|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.status == "ok":
            lines.append(f"| {r.model} | {r.params_m:.2f} | {r.backend} | {r.size} | {r.median_ms:.2f} | "
                         f"{r.p95_ms:.2f} | {r.fps:.1f} | {r.iterations} | {r.note} |")
        else:
            lines.append(f"| {r.model} | | {r.backend} | {r.size} | | | | | skipped: {r.note} |")
    return "\n".join(lines)
