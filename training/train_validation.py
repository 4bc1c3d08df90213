"""Validation during training (confusion counts per data set, all-reduced over ranks), the scores that pick
the best epoch, and the choice of the decision threshold stored in ``best.pt``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.frame_model import FrameSegmenter
from training.frame_cache import FrameCache
from training.losses import segmentation_loss
from training.metrics import METRIC_NAMES, ConfusionCounts, confusion
from training.precision import Precision
from training.train_dist import Dist, log

THRESHOLD_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(9))


@torch.no_grad()
def validate(
    model: FrameSegmenter,
    cache: FrameCache,
    ctx: Dist,
    batch_size: int,
    thresholds: Sequence[float] = (0.5,),
    precision: Precision | None = None,
) -> tuple[dict[str, list[ConfusionCounts]], float]:
    """Confusion counts per data set (root) at each threshold, and the mean loss over the whole cache
    (this rank's share of frames, all-reduced over ranks)."""
    model.eval()
    groups = list(cache.root_indices())
    group_of = {root: g for g, root in enumerate(groups)}
    indices = range(ctx.rank, len(cache), ctx.world)
    totals = [[ConfusionCounts() for _ in thresholds] for _ in groups]
    loss_sum = 0.0
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        frames = torch.from_numpy(cache.images[chunk]).to(ctx.device)
        target = torch.from_numpy(cache.masks[chunk]).to(ctx.device)
        with precision.autocast() if precision is not None else contextlib.nullcontext():
            logits = model(frames)
        loss_sum += float(segmentation_loss(logits.float(), target[:, None].float())) * len(chunk)
        prob = torch.sigmoid(logits.float())[:, 0].cpu()
        target = target.cpu()
        for row, index in enumerate(chunk):
            group = totals[group_of[cache.roots[index]]]
            for i, threshold in enumerate(thresholds):
                group[i] += confusion(prob[row : row + 1] >= threshold, target[row : row + 1])
    flat = [counts.to_tensor() for group in totals for counts in group]
    reduced = ctx.sum_(torch.stack(flat + [torch.tensor([loss_sum] + [0.0] * 5, dtype=torch.float64)]))
    per_root = {
        root: [ConfusionCounts.from_tensor(reduced[g * len(thresholds) + i]) for i in range(len(thresholds))]
        for g, root in enumerate(groups)
    }
    return per_root, float(reduced[-1, 0]) / max(1, len(cache))


def summarise(per_root: dict[str, ConfusionCounts]) -> dict[str, float]:
    """Validation scores: pooled over all frames (``iou``, ``dice``, ...), per data set
    (``<root>_iou``, ``<root>_precision``, ``<root>_recall``) and ``score``, the mean IoU over data
    sets, which picks the best epoch and the threshold (so a small real set counts as much as a
    large generated one)."""
    pooled = ConfusionCounts()
    for counts in per_root.values():
        pooled += counts
    scores = {k: v for k, v in pooled.metrics().items() if k in (*METRIC_NAMES, "mean_frame_iou")}
    root_ious = []
    for root, counts in per_root.items():
        metrics = counts.metrics()
        root_ious.append(metrics["iou"])
        if len(per_root) > 1:
            scores.update({f"{root}_{k}": metrics[k] for k in ("iou", "precision", "recall")})
    scores["score"] = float(np.mean(root_ious))
    return scores


def pick_threshold(
    args: argparse.Namespace, ctx: Dist, val: FrameCache, precision: Precision, best: dict[str, Any]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Store in ``OUT/best.pt`` the threshold of the grid with the best validation score; returns
    (score per threshold, the chosen validation metrics)."""
    best_path = args.out / "best.pt"
    if not (args.pick_threshold and best_path.is_file()):
        return {}, best
    best_model, best_meta = load_checkpoint(best_path)
    per_root, _ = validate(precision.prepare_model(best_model.to(ctx.device)), val, ctx, args.batch_size, THRESHOLD_GRID, precision)
    grid = [summarise({root: counts[i] for root, counts in per_root.items()}) for i in range(len(THRESHOLD_GRID))]
    threshold_scores = {f"{t:.2f}": g["score"] for t, g in zip(THRESHOLD_GRID, grid, strict=True)}
    chosen, scores = max(zip(THRESHOLD_GRID, grid, strict=True), key=lambda tg: (tg[1]["score"], -abs(tg[0] - 0.5)))
    best_meta.threshold = chosen
    validation = {"epoch": best.get("epoch"), "threshold": chosen, **scores}
    best_meta.metrics = {
        "validation": validation,
        "validation_at_0.5": best,
        "threshold_search_score": threshold_scores,
        "note": "pooled over val pixels at the input size; score = mean IoU over data sets; threshold = argmax score over the grid",
    }
    if ctx.main:
        save_checkpoint(best_path, best_model, best_meta)
        log(
            ctx,
            f"threshold {chosen:.2f} picked on validation (score {scores['score']:.4f}, IoU {scores['iou']:.4f}); stored in {best_path}",
        )
    return threshold_scores, validation
