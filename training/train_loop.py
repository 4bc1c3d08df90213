"""The epoch loop of a training run: one optimisation pass per epoch, validation, ``last.pt`` / ``best.pt`` and
the metrics files written after every epoch, early stopping and the time budget."""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from models.atomic_io import atomic_write_text
from models.checkpoint import ModelMeta, save_checkpoint
from models.frame_model import FrameSegmenter
from training.frame_cache import FrameCache
from training.losses import segmentation_loss
from training.plots import write_curves
from training.precision import Precision
from training.train_dist import Dist, log, progress, sync_buffers
from training.train_optim import Optimisation
from training.train_validation import summarise, validate


@dataclass
class RunState:
    """Progress of a run, saved in ``last.pt`` for ``--resume``."""

    counters: dict[str, Any] = field(
        default_factory=lambda: {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "epochs_since_best": 0, "global_step": 0, "seconds": 0.0}
    )
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metrics: dict[str, Any] = field(default_factory=dict)

    def restore(self, extra: dict[str, Any]) -> None:
        """Take the progress stored in a ``last.pt``'s ``extra`` block."""
        counters = dict(extra["state"])
        if "best_iou" in counters:  # last.pt written before the per-data-set score
            counters.setdefault("best_score", counters.pop("best_iou"))
        self.counters.update(counters)
        self.history = list(extra["history"])
        self.best_metrics = dict(extra.get("best_metrics", {}))


def train_epoch(
    net: nn.Module,
    model: nn.Module,
    loader: DataLoader,
    opt: Optimisation,
    ctx: Dist,
    precision: Precision,
    budget: tuple[float, float | None],
) -> tuple[float, int, bool]:
    """One pass over ``loader``; returns (loss sum, frames seen, whether the time budget ran out)."""
    budget_start, budget_s = budget
    net.train()
    loss_sum, seen = 0.0, 0
    for frames, masks in progress(ctx, loader, len(loader), "epoch"):
        frames = frames.to(ctx.device, non_blocking=True)
        target = masks.to(ctx.device, non_blocking=True)[:, None].float()
        with precision.autocast():
            logits = net(frames)
        loss = segmentation_loss(logits.float(), target)
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(loss).backward()
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        if budget_s is not None:
            opt.budget_used[0] = ctx.max_((time.monotonic() - budget_start) / max(budget_s, 1e-9))
        opt.scheduler.step()
        if opt.ema is not None:
            opt.ema.update(model)
        loss_sum += float(loss.detach()) * len(frames)
        seen += len(frames)
        if opt.budget_used[0] >= 1.0:
            return loss_sum, seen, True
    return loss_sum, seen, False


def format_epoch(row: dict[str, Any], improved: bool) -> str:
    """One log line per epoch: losses, pooled scores and each data set's IoU/precision/recall."""
    roots = [k[: -len("_precision")] for k in row if k.startswith("val_") and k.endswith("_precision") and k != "val_precision"]
    per_root = "  ".join(f"{r[4:]} IoU {row[r + '_iou']:.3f} P {row[r + '_precision']:.3f} R {row[r + '_recall']:.3f}" for r in roots)
    return (
        f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  IoU {row['val_iou']:.4f}  "
        f"Dice {row['val_dice']:.4f}  P {row['val_precision']:.3f}  R {row['val_recall']:.3f}  score {row['val_score']:.4f}"
        f"{'  ' + per_root if per_root else ''}  {row['epoch_seconds']:.0f}s{'  *best' if improved else ''}"
    )


def run_epochs(
    args: argparse.Namespace,
    ctx: Dist,
    net: nn.Module,
    model: FrameSegmenter,
    loader: DataLoader,
    epoch_aware: tuple[Any, ...],
    opt: Optimisation,
    run: RunState,
    val: FrameCache,
    meta: ModelMeta,
    precision: Precision,
    start_time: float,
) -> str:
    """Train, validate and checkpoint epoch by epoch; returns why it stopped early ("" if it did not)."""
    counters = run.counters
    seconds_before = float(counters["seconds"])
    budget_s = 60 * args.max_train_minutes if args.max_train_minutes is not None else None
    # --anneal-to-budget counts the whole run (resumes included); a plain budget counts this process
    budget_start = start_time - (seconds_before if args.anneal_to_budget else 0.0)
    first_epoch = int(counters["epoch"]) + 1
    if first_epoch > args.epochs:
        log(ctx, f"already trained {counters['epoch']} epochs (--epochs {args.epochs}); nothing to do")
    for epoch in range(first_epoch, args.epochs + 1):
        epoch_start = time.monotonic()
        for part in epoch_aware:
            part.set_epoch(epoch)
        loss_sum, seen, time_up = train_epoch(net, model, loader, opt, ctx, precision, (budget_start, budget_s))
        counters["global_step"] += len(loader)
        sync_buffers(model, ctx)
        validated: nn.Module = model
        if opt.ema is not None:
            sync_buffers(opt.ema.model, ctx)
            validated = opt.ema.model
        totals = ctx.sum_(torch.tensor([loss_sum, float(seen)], dtype=torch.float64))
        per_root, val_loss = validate(validated, val, ctx, args.batch_size, precision=precision)  # type: ignore[arg-type]
        scores = summarise({root: counts[0] for root, counts in per_root.items()})
        counters.update(epoch=epoch, seconds=seconds_before + time.monotonic() - start_time)
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": float(totals[0] / max(1.0, float(totals[1]))),
            "val_loss": val_loss,
            **{f"val_{k}": v for k, v in scores.items()},
            "lr": opt.optimizer.param_groups[0]["lr"],
            "epoch_seconds": time.monotonic() - epoch_start,
            "train_images": int(totals[1]),
            "partial": time_up,
        }
        run.history.append(row)
        improved = scores["score"] > counters["best_score"]
        if improved:
            counters.update(best_score=scores["score"], best_epoch=epoch, epochs_since_best=0)
            run.best_metrics = {"epoch": epoch, "threshold": 0.5, **scores}
        else:
            counters["epochs_since_best"] += 1
        meta.training.update(epochs=epoch, seconds=round(counters["seconds"], 1))
        meta.metrics = {"validation": run.best_metrics, "note": "pooled over val pixels at the input size"}
        if ctx.main:
            extra = {
                **opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "state": dict(counters),
                "history": run.history,
                "best_metrics": run.best_metrics,
            }
            save_checkpoint(args.out / "last.pt", model, meta, extra)
            if improved:  # weights and metadata only: best.pt is what gets shipped
                save_checkpoint(args.out / "best.pt", validated, meta)
            write_metrics(args.out, run.history, {"best": run.best_metrics})
        log(ctx, format_epoch(row, improved))
        if time_up:
            return f"time budget of {args.max_train_minutes} min reached in epoch {epoch}"
        if args.patience > 0 and counters["epochs_since_best"] >= args.patience:
            return f"early stopping: no validation score improvement for {args.patience} epochs"
    return ""


def write_metrics(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Rewrite ``metrics.csv``, ``metrics.json`` and ``curves.png`` atomically."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "metrics.csv", buffer.getvalue())
    atomic_write_text(out / "metrics.json", json.dumps({"epochs": rows, **summary}, indent=2))
    if rows:
        write_curves(out / "curves.png", rows)
