"""Binary segmentation metrics from pixel confusion counts.

Counts (TP, FP, FN, TN) are accumulated over every pixel of a split, so IoU/Dice/precision/
recall are "dataset-level" (pooled over pixels), not means of per-frame scores; the per-frame
mean IoU is reported separately as ``mean_frame_iou``.

Empty cases are defined so that a perfect prediction scores 1: IoU and Dice are 1 when neither
prediction nor ground truth has a positive pixel; precision is 1 when nothing is predicted and
nothing was to be found (0 when positives were missed); recall is 1 when the ground truth is
empty and nothing is predicted (0 when there are false positives). ``background_accuracy`` is
the pixel accuracy of predicting background everywhere (the fraction of background pixels),
the baseline to compare ``accuracy`` with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

METRIC_NAMES = ("iou", "dice", "precision", "recall", "accuracy", "background_accuracy")


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num) / float(den) if den > 0 else empty


@dataclass
class ConfusionCounts:
    """Pixel confusion counts plus the per-frame IoU sum for a mean over frames."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    frame_iou_sum: float = 0.0
    frames: int = 0

    def __iadd__(self, other: ConfusionCounts) -> ConfusionCounts:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.frame_iou_sum += other.frame_iou_sum
        self.frames += other.frames
        return self

    def to_tensor(self) -> torch.Tensor:
        """Float64 vector (for ``all_reduce``)."""
        return torch.tensor([self.tp, self.fp, self.fn, self.tn, self.frame_iou_sum, self.frames], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> ConfusionCounts:
        """Inverse of :meth:`to_tensor`."""
        v = values.tolist()
        return cls(
            int(round(v[0])), int(round(v[1])), int(round(v[2])), int(round(v[3])), float(v[4]), int(round(v[5]))
        )

    def metrics(self) -> dict[str, float]:
        """IoU, Dice, precision, recall, accuracy, all-background accuracy and mean per-frame IoU."""
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        total = tp + fp + fn + tn
        return {
            "iou": _ratio(tp, tp + fp + fn, 1.0),
            "dice": _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
            "precision": _ratio(tp, tp + fp, 1.0 if fn == 0 else 0.0),
            "recall": _ratio(tp, tp + fn, 1.0 if fp == 0 else 0.0),
            "accuracy": _ratio(tp + tn, total, 1.0),
            "background_accuracy": _ratio(tn + fp, total, 1.0),
            "mean_frame_iou": _ratio(self.frame_iou_sum, self.frames, float("nan")),
            "pixels": float(total),
            "frames": float(self.frames),
        }


def confusion(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> ConfusionCounts:
    """Counts for boolean (or 0/1) ``pred`` and ``target`` of equal shape ``[N×]H×W``.

    A leading batch axis (3+ dims) is treated as frames for the per-frame IoU; a 2-D input is
    one frame.
    """
    p = torch.as_tensor(np.asarray(pred) if isinstance(pred, np.ndarray) else pred).bool()
    t = torch.as_tensor(np.asarray(target) if isinstance(target, np.ndarray) else target).bool()
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} differs from target shape {tuple(t.shape)}")
    if p.dim() == 2:
        p, t = p[None], t[None]
    p = p.reshape(p.shape[0], -1)
    t = t.reshape(t.shape[0], -1)
    tp = (p & t).sum(1)
    fp = (p & ~t).sum(1)
    fn = (~p & t).sum(1)
    tn = (~p & ~t).sum(1)
    union = tp + fp + fn
    frame_iou = torch.where(
        union > 0, tp.double() / union.clamp(min=1).double(), torch.ones_like(union, dtype=torch.float64)
    )
    return ConfusionCounts(
        int(tp.sum()), int(fp.sum()), int(fn.sum()), int(tn.sum()), float(frame_iou.sum()), int(p.shape[0])
    )
