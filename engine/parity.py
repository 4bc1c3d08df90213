"""Numerical parity of backends against the PyTorch CPU FP32 reference (``python -m engine verify``)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.backends.base import BackendUnavailable
from engine.model_source import load_model_source
from engine.specs import BackendSpec
from engine.synthetic import draw_frames

#: Allowed max |Δlogits|, relative to max(1, max |reference logits|), and minimum mask IoU.
#: INT8 (``onnxruntime-cpu/int8``): its own record's bar (engine/int8_record.py: MIN_IOU) and a loose logit bound.
TOLERANCES = {"fp32": (1e-3, 0.999), "fp16": (2e-2, 0.99), "int8": (0.25, 0.98)}


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def logit_threshold(threshold: float) -> float:
    """The logit equal to probability ``threshold``."""
    return math.log(threshold / (1.0 - threshold))


@dataclass
class ParityRow:
    """One backend compared with the reference."""

    backend: str
    precision: str
    status: str  # "ok", "FAIL", "skipped"
    max_abs_diff: float | None = None
    tolerance: float | None = None
    iou: float | None = None
    min_iou: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def reference_logits(model_path: str | os.PathLike[str], frames: np.ndarray) -> np.ndarray:
    """PyTorch CPU FP32 logits for ``frames``."""
    model, _ = load_model_source(Path(model_path))
    with torch.no_grad():
        return model.eval()(torch.from_numpy(frames)).float().numpy()


def compare(
    spec: BackendSpec, model_path: str | os.PathLike[str], frames: np.ndarray, reference: np.ndarray
) -> ParityRow:
    """Run ``spec`` on ``frames`` and compare with ``reference``; unavailable backends are ``skipped``."""
    try:
        backend = spec.create(model_path)
    except BackendUnavailable as error:
        return ParityRow(str(spec), spec.precision, "skipped", detail=str(error))
    with backend:
        precision = getattr(backend, "precision", None) or ("fp16" if getattr(backend, "half", False) else "fp32")
        logits = np.concatenate([backend.infer(frames[i : i + 1]) for i in range(len(frames))])
        cut = logit_threshold(backend.threshold)
        detail = backend.describe()
    relative, min_iou = TOLERANCES[precision]
    tolerance = relative * max(1.0, float(np.abs(reference).max()))
    diff = float(np.abs(logits - reference).max())
    iou = mask_iou(logits >= cut, reference >= cut)
    ok = diff <= tolerance and iou >= min_iou and logits.shape == reference.shape and logits.dtype == np.float32
    return ParityRow(str(spec), precision, "ok" if ok else "FAIL", diff, tolerance, iou, min_iou, detail)


def verify(
    model_path: str | os.PathLike[str], specs: list[BackendSpec], frames: int = 6, seed: int = 0
) -> list[ParityRow]:
    """Compare every spec with PyTorch CPU FP32 on ``frames`` drawn frames at the model input size."""
    _, meta = load_model_source(Path(model_path))
    batch = draw_frames(frames, meta.input_height, meta.input_width, seed=seed)
    reference = reference_logits(model_path, batch)
    return [compare(spec, model_path, batch, reference) for spec in specs]


def format_parity(rows: list[ParityRow]) -> str:
    """Plain-text table."""
    lines = [f"{'backend':28} {'prec':5} {'status':8} {'max|Δlogit|':>12} {'tol':>9} {'IoU':>8} {'min':>6}  detail"]
    for r in rows:
        if r.status == "skipped":
            lines.append(f"{r.backend:28} {'-':5} {'skipped':8} {'':>12} {'':>9} {'':>8} {'':>6}  {r.detail}")
        else:
            lines.append(
                f"{r.backend:28} {r.precision:5} {r.status:8} {r.max_abs_diff:12.2e} {r.tolerance:9.1e} "
                f"{r.iou:8.5f} {r.min_iou:6.3f}  {r.detail}"
            )
    return "\n".join(lines)
