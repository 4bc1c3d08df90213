"""Scores and the report of ``python -m training.adapt``: before/after on the held-back frames and on generated scenes.

Scoring is the same as ``python -m training.evaluate`` (model at its input size, probabilities upsampled
bilinearly to each mask's resolution, pixels pooled over the frames), computed once per frame for every
threshold of the grid, so the threshold can be picked on the held-back frames without running the model
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.frame_model import FrameSegmenter, resize_to_input
from training.datasets import FramePair, load_pair
from training.metrics import ConfusionCounts, confusion
from training.plots import error_overlay, label_tile, write_grid

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 ... 0.90


@dataclass
class Scored:
    """Confusion counts of one model on a set of frames at every threshold, and its probabilities per frame."""

    counts: dict[float, ConfusionCounts]
    probabilities: list[np.ndarray] = field(default_factory=list)

    def metrics(self, threshold: float) -> dict[str, float]:
        """IoU, precision, recall, ... pooled over the frames at ``threshold`` (nearest grid value)."""
        nearest = min(self.counts, key=lambda t: abs(t - threshold))
        return self.counts[nearest].metrics()

    def best_threshold(self) -> float:
        """The grid threshold with the highest pooled IoU (ties: the one nearest 0.5)."""
        return max(self.counts, key=lambda t: (round(self.counts[t].metrics()["iou"], 6), -abs(t - 0.5)))


@torch.no_grad()
def score(model: FrameSegmenter, input_size: tuple[int, int], pairs: Sequence[FramePair], keep: bool = False,
          device: str = "cpu") -> Scored:
    """Score ``model`` on ``pairs`` at every threshold of :data:`THRESHOLDS` (``keep``: keep each frame's probability)."""
    model = model.to(device).eval()
    counts = {t: ConfusionCounts() for t in THRESHOLDS}
    kept: list[np.ndarray] = []
    for pair in pairs:
        image, mask = load_pair(pair)
        batch = torch.from_numpy(resize_to_input(image, input_size)[None]).to(device)
        prob = torch.sigmoid(model(batch).float()).cpu()
        full = F.interpolate(prob, size=mask.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
        for threshold, frame_counts in zip(THRESHOLDS, counts_at_thresholds(full, mask, THRESHOLDS), strict=True):
            counts[threshold] += frame_counts
        if keep:
            kept.append(full.astype(np.float16))
    return Scored(counts, kept)


def counts_at_thresholds(prob: np.ndarray, mask: np.ndarray, thresholds: Sequence[float]) -> list[ConfusionCounts]:
    """One frame's confusion counts at each of ``thresholds`` (ascending), from one pass over its pixels:
    the same as ``confusion(prob >= t, mask)`` for every ``t``."""
    bins = np.searchsorted(np.asarray(thresholds, np.float32), prob.astype(np.float32).ravel(), side="right")
    truth = mask.ravel().astype(bool)
    at_or_above_pos = np.cumsum(np.bincount(bins[truth], minlength=len(thresholds) + 1)[::-1])[::-1]
    at_or_above_neg = np.cumsum(np.bincount(bins[~truth], minlength=len(thresholds) + 1)[::-1])[::-1]
    positives, negatives = int(truth.sum()), int(truth.size - truth.sum())
    result = []
    for i in range(len(thresholds)):
        tp, fp = int(at_or_above_pos[i + 1]), int(at_or_above_neg[i + 1])
        union = tp + fp + (positives - tp)
        result.append(ConfusionCounts(tp, fp, positives - tp, negatives - fp, tp / union if union else 1.0, 1))
    return result


def before_after_grid(path: Path, pairs: Sequence[FramePair], before: Scored, after: Scored,
                      thresholds: tuple[float, float], rows: int = 6) -> Path:
    """A picture grid ``image | before | after`` (TP green, FP red, FN blue) of the held-back frames
    where adaptation changed the IoU most, largest change first."""
    changes = []
    for index, pair in enumerate(pairs):
        _, mask = load_pair(pair)
        ious = [confusion(s.probabilities[index] >= t, mask).metrics()["iou"] for s, t in zip((before, after), thresholds, strict=True)]
        changes.append((abs(ious[1] - ious[0]), index, ious))
    tiles = []
    for _, index, ious in sorted(changes, reverse=True)[:rows]:
        image, mask = load_pair(pairs[index])
        width = 320
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        truth = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        row = [label_tile(small.copy(), pairs[index].image.stem[:40])]
        for label, scored, threshold, iou in zip(("before", "after"), (before, after), thresholds, ious, strict=True):
            pred = cv2.resize((scored.probabilities[index] >= threshold).astype(np.uint8), (width, height),
                              interpolation=cv2.INTER_NEAREST)
            row.append(label_tile(error_overlay(small, pred, truth), f"{label} IoU {iou:.3f}"))
        tiles.append(np.hstack(row))
    return write_grid(path, tiles)


def _table(title: str, rows: dict[str, dict[str, float]]) -> list[str]:
    """A markdown section: ``title`` and one row per model (its threshold, IoU, precision, recall)."""
    lines = [f"## {title}", "", "| model | threshold | IoU | precision | recall |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {m['threshold']:.2f} | {m['iou']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} |" for name, m in rows.items()]
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """``report.md``: what was adapted, on what, the before/after tables and the caveats."""
    held, gen = report["held_back"], report["generated_validation"]
    lines = [
        "# Adaptation report",
        "",
        f"- Started from `{report['checkpoint']}`; adapted model: `{report['model']}` (threshold {report['threshold']:.2f}, "
        "picked on the held-back frames).",
        f"- Your frames: {report['frames']['total']} ({report['frames']['with_instrument']} show an instrument); "
        f"trained on {report['frames']['train']}, held back {report['frames']['held_back']} ({report['frames']['split']}).",
        f"- Mixed with {report['generated']['frames']} generated frames ({report['generated']['folder']}), "
        f"weights {report['training']['data_weights']}; {report['training']['epochs']} epochs, "
        f"{report['training']['seconds']:.0f} s of training, precision {report['training']['precision']}.",
        f"- Wall-clock time: {report['seconds']:.0f} s (asked: {report['minutes']:g} min).",
        "",
        *_table("Your held-back frames", {"before (shipped threshold)": held["before"],
                                         "before, threshold picked on these frames": held["before_repicked"],
                                         "**after**": held["after"]}),
        "",
        *_table("Generated validation scenes (what the model may have forgotten)", {"before": gen["before"], "after": gen["after"]}),
        f"| change | | {gen['after']['iou'] - gen['before']['iou']:+.3f} | | |",
        "",
        "## Read with care",
        "",
        "- The threshold was picked on the same held-back frames that are scored, so the *after* row (and the "
        "re-picked *before* row) is optimistic; with few frames, expect less on the rest of the recording.",
        f"- {len(report['notes'])} note(s): " + ("; ".join(report["notes"]) if report["notes"] else "none"),
        "",
        f"Before/after pictures (held-back frames that changed most): `{report['grid']}`.",
        "",
    ]
    return "\n".join(lines)
