"""Train the U-Net end to end on uint8 BGR frames: ``python -m training.train --data DIR --out runs/NAME``.

The trained module is the :class:`~models.frame_model.FrameSegmenter` (normalisation inside),
fed ``uint8`` BGR ``N×H×W×3`` batches at the ModelMeta input size: the same contract as export
and inference. Frames are decoded and resized once into RAM; augmentation runs on the cached
copies. The data are split by video (``--val-videos``).

Loss: BCE-with-logits + soft Dice. Optimiser: AdamW with linear warm-up then cosine decay
(per step). Validation metrics are pooled over all pixels of the validation split at the
training resolution (``training.evaluate`` scores at the original mask resolution).

Outputs in ``--out``: ``metrics.csv``, ``metrics.json``, ``curves.png``, ``last.pt`` (every
epoch, with optimiser/scheduler/scaler state for ``--resume``) and ``best.pt`` (weights and
metadata only, best validation IoU). With ``--ema`` (default 0.999) validation and ``best.pt`` use
the moving average of the weights from :mod:`training.ema`; ``last.pt`` carries that average for
``--resume``. After training the decision threshold is picked on the validation split (maximum IoU over
0.30, 0.35, ..., 0.70 with the best weights) and stored in ``best.pt``'s ModelMeta.threshold
(``--no-pick-threshold`` keeps 0.5).

Multi-process: ``torchrun --nproc_per_node N -m training.train ...`` uses DistributedDataParallel
(nccl on CUDA, gloo on CPU); rank 0 logs and writes files, validation counts are all-reduced.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from models.atomic_io import atomic_write_text
from models.checkpoint import (
    ModelMeta,
    build_segmenter,
    checkpoint_meta,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    weights_digest,
)
from models.cpu import usable_cores
from models.frame_model import FrameSegmenter
from models.sizes import parse_size
from models.unet import UNetConfig, preset
from training.augment import AUGMENT_PRESETS, augment_preset
from training.cli_checks import out_dir_problem
from training.datasets import (
    DEFAULT_GROUP_BY,
    LAYOUTS,
    CachedFrameDataset,
    DatasetError,
    DatasetIndex,
    FrameCache,
    Video,
    WeightedRootSampler,
    build_cache,
    combine,
    discover,
    split_videos,
    subsample,
)
from training.ema import WeightEMA
from training.metrics import METRIC_NAMES, ConfusionCounts, confusion
from training.plots import write_curves
from training.precision import PRECISIONS, Precision, resolve_precision

THRESHOLD_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(9))


def parse_val_videos(text: str) -> int | list[str]:
    """A count (``"2"``) or comma-separated video names (``"Video_03,Video_07"``)."""
    return int(text) if text.strip().isdigit() else [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m training.train``."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        nargs="+",
        help="dataset root; several roots are trained on together, their videos named ROOTNAME/VIDEO",
    )
    p.add_argument(
        "--data-weights",
        type=float,
        nargs="+",
        help="sampling weight of each --data root (same order): each epoch draws that share of its frames from each "
        "root, e.g. 1 1 for half real, half generated (default: every frame once per epoch)",
    )
    p.add_argument("--epoch-samples", type=int, help="frames drawn per epoch with --data-weights (default: all training frames)")
    p.add_argument("--layout", default="auto", choices=LAYOUTS)
    p.add_argument("--group-by", default=DEFAULT_GROUP_BY, help="folders layout: regex on file stems giving the video")
    p.add_argument("--out", required=True, type=Path, help="run folder (metrics, curves, checkpoints)")
    p.add_argument("--model", default="fast", help="preset: fast, balanced or classic")
    p.add_argument("--width", type=int, help="override the preset's base width")
    p.add_argument("--depth", type=int, help="override the preset's depth")
    p.add_argument("--upsample", choices=("bilinear", "transpose"), help="override the preset's up-sampling")
    p.add_argument("--input-size", type=parse_size, default=(256, 320), help="HEIGHTxWIDTH (default 256x320)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 3%% of all steps, at most one epoch")
    p.add_argument("--val-videos", type=parse_val_videos, default=2, help="count or comma-separated names")
    p.add_argument("--frame-step", type=int, default=1, help="use every Nth frame of each video")
    p.add_argument("--workers", type=int, default=2, help="decode threads for the RAM cache")
    p.add_argument("--loader-workers", type=int, default=0, help="DataLoader processes for augmentation")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--augment",
        default="footage",
        choices=AUGMENT_PRESETS,
        help="augmentation preset: basic (geometry, colour, blur, noise, JPEG) or footage (basic plus monochrome, colour "
        "casts, haze/smoke, motion blur, over-exposure, specular highlights, field stops; default)",
    )
    p.add_argument("--no-augment", action="store_true", help="disable augmentation (for overfitting checks)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="checkpoint to resume; no value: OUT/last.pt (a new run if it does not exist yet)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        help="fine-tune: start from this checkpoint's weights, config and input size with a fresh optimiser, schedule and epoch counter",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.999,
        help="decay of the weight average that is validated and shipped (0 disables; default 0.999)",
    )
    p.add_argument("--patience", type=int, default=10, help="early stopping on val IoU; 0 disables")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): fp16 autocast on CUDA, bf16 autocast + channels_last on CPUs with native bf16 "
        "(AVX-512 BF16 or AMX), else fp32; the choice and its reason are logged",
    )
    p.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=None, help="old spelling: --amp = --precision fp16, --no-amp = fp32"
    )
    p.add_argument("--max-train-minutes", type=float, default=None, help="stop cleanly after this time budget")
    p.add_argument(
        "--anneal-to-budget",
        action="store_true",
        help="with --max-train-minutes: the cosine decay follows whichever runs out first, the epochs or the "
        "time budget (counted over the whole run, resumes included), so a run cut by the budget still ends "
        "at the low learning rate; set --epochs high to let the budget decide",
    )
    p.add_argument("--pick-threshold", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


# --------------------------------------------------------------------------- distributed helpers


class Dist:
    """Rank/world information; single-process when not launched by torchrun."""

    def __init__(self, device_arg: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        use_cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if device_arg not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device {device_arg!r}: expected auto, cpu or cuda")
        if use_cuda and not torch.cuda.is_available():
            raise ValueError("--device cuda was requested but CUDA is not available")
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.enabled:
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """True on the process that logs and writes files."""
        return self.rank == 0

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) in place when distributed; returns the tensor."""
        if self.enabled:
            moved = tensor.to(self.device)
            dist.all_reduce(moved)
            tensor.copy_(moved.cpu() if tensor.device.type == "cpu" else moved)
        return tensor

    def max_(self, value: float) -> float:
        """The largest ``value`` over ranks (the value itself single-process)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def barrier(self) -> None:
        """Synchronise ranks (no-op single-process)."""
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Tear down the process group."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def sync_buffers(model: nn.Module, ctx: Dist) -> None:
    """Copy rank 0's buffers (batch-norm statistics) to every rank."""
    if ctx.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


# --------------------------------------------------------------------------- training pieces


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice per image, averaged over the batch (float32)."""
    prob = torch.sigmoid(logits.float())
    inter = (prob * target).sum((1, 2, 3))
    denom = prob.sum((1, 2, 3)) + target.sum((1, 2, 3))
    return 1.0 - ((2.0 * inter + eps) / (denom + eps)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits + soft Dice; ``target`` float 0/1 ``N×1×H×W``."""
    return F.binary_cross_entropy_with_logits(logits.float(), target) + soft_dice_loss(logits, target)


def warmup_cosine(
    total_steps: int, warmup_steps: int, floor: float = 0.01, time_fraction: Callable[[], float] | None = None
) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``floor``.

    With ``time_fraction`` (the share of a time budget used, 0..1) the decay progresses by the
    larger of the step fraction and the time fraction, so it reaches ``floor`` when either runs out.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        if time_fraction is not None:
            progress = max(progress, time_fraction())
        progress = min(1.0, progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@contextlib.contextmanager
def opencv_threads(count: int | None) -> Iterator[None]:
    """Set OpenCV's thread count for the block (``None``: leave it), then restore it.

    Used with DataLoader workers: they are forked, inherit the setting, and then use one core each
    for augmentation instead of each spreading over all of them. (Calling ``cv2.setNumThreads``
    inside a forked worker can deadlock on the parent's thread pool, so it is set before the fork.)
    """
    if count is None:
        yield
        return
    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


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


def _progress(ctx: Dist, iterable: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
    return tqdm(iterable, total=total, desc=desc, disable=not (ctx.main and sys.stderr.isatty()), leave=False)


def model_config(args: argparse.Namespace) -> UNetConfig:
    """The preset named by ``--model`` with ``--width/--depth/--upsample`` overrides."""
    config = preset(args.model)
    overrides = {k: v for k, v in (("base_width", args.width), ("depth", args.depth), ("upsample", args.upsample)) if v is not None}
    return replace(config, **overrides) if overrides else config


def resolve_resume(args: argparse.Namespace) -> Path | None:
    """Path of the checkpoint to resume from: explicit path, ``OUT/last.pt`` for ``auto`` if it exists, else None."""
    if args.resume is None:
        return None
    if args.resume == "auto":
        path = args.out / "last.pt"
        return path if path.is_file() else None
    path = Path(args.resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume {path}: no such checkpoint file")
    return path


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


# --------------------------------------------------------------------------- main loop


def train(args: argparse.Namespace, command: str = "") -> dict[str, Any]:
    """Run training as configured by ``args`` (see :func:`build_parser`); returns the summary dict."""
    ctx = Dist(args.device)
    try:
        with opencv_threads(1 if args.loader_workers > 0 else None):
            return _train(args, ctx, command)
    finally:
        ctx.close()


def _log(ctx: Dist, message: str) -> None:
    if ctx.main:
        print(message, flush=True)


def check_args(args: argparse.Namespace) -> None:
    """Reject option values that cannot work, naming the option and the value."""
    for name in ("epochs", "batch_size", "frame_step", "workers"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    if not 0.0 <= args.ema < 1.0:
        raise ValueError(f"--ema must be in [0, 1), got {args.ema}")
    if args.anneal_to_budget and args.max_train_minutes is None:
        raise ValueError("--anneal-to-budget needs --max-train-minutes (the budget the decay follows)")
    if args.data_weights is not None and len(args.data_weights) != len(args.data):
        raise ValueError(
            f"--data-weights has {len(args.data_weights)} value(s) {args.data_weights} for {len(args.data)} --data root(s); "
            "expected one weight per root"
        )
    if args.data_weights is not None and (min(args.data_weights) < 0 or sum(args.data_weights) <= 0):
        raise ValueError(f"--data-weights {args.data_weights}: expected weights >= 0 with a positive sum")
    if args.epoch_samples is not None and args.epoch_samples < 1:
        raise ValueError(f"--epoch-samples must be >= 1, got {args.epoch_samples}")
    if args.resume is not None and args.init_from is not None:
        raise ValueError("--resume and --init-from exclude each other: resume continues a run, init-from starts one")


@dataclass
class StartPoint:
    """Where a run starts: the model description and the checkpoints it continues from, if any."""

    meta: ModelMeta
    resume: dict[str, Any] | None = None  # OUT/last.pt payload (weights and training state)
    init: dict[str, Any] | None = None  # --init-from payload (weights only)


def load_start(args: argparse.Namespace, ctx: Dist) -> StartPoint:
    """A new model from the options, or the one stored in ``--resume`` / ``--init-from``."""
    resume_path = resolve_resume(args)
    for label, path in (("fine-tuning from", args.init_from), ("resuming from", resume_path)):
        if path is not None:
            payload = read_checkpoint(path)
            meta = checkpoint_meta(payload, path)
            meta.threshold = 0.5
            _log(ctx, f"{label} {path} (config {meta.config}, input {meta.input_height}x{meta.input_width})")
            return StartPoint(meta, resume=payload if path == resume_path else None, init=None if path == resume_path else payload)
    if args.resume == "auto":
        _log(ctx, f"--resume: {args.out / 'last.pt'} does not exist yet; starting a new run")
    return StartPoint(ModelMeta(model_config(args), input_height=args.input_size[0], input_width=args.input_size[1]))


@dataclass
class TrainingData:
    """The data sets, their split by video and the RAM caches of both splits."""

    indexes: list[DatasetIndex]
    train_videos: list[Video]
    val_videos: list[Video]
    train: FrameCache
    val: FrameCache

    def summary(self, args: argparse.Namespace) -> dict[str, Any]:
        """What the checkpoint records about the training data."""
        return {
            "root": str(self.indexes[0].root.resolve()) if len(self.indexes) == 1 else None,
            "roots": [{"root": str(index.root.resolve()), "layout": index.layout} for index in self.indexes],
            "layout": self.indexes[0].layout if len({index.layout for index in self.indexes}) == 1 else "mixed",
            "group_by": args.group_by if any(index.layout == "folders" for index in self.indexes) else None,
            "frame_step": args.frame_step,
            "data_weights": root_weights(args, self.train) if args.data_weights is not None else None,
            "augment": "none" if args.no_augment else args.augment,
            "train_videos": [v.name for v in self.train_videos],
            "val_videos": [v.name for v in self.val_videos],
            "train_frames": len(self.train),
            "val_frames": len(self.val),
        }


def load_data(args: argparse.Namespace, ctx: Dist, size: tuple[int, int]) -> TrainingData:
    """Discover every ``--data`` root, split by video (per root) and cache both splits at ``size``."""
    indexes = [discover(root, args.layout, args.group_by) for root in args.data]
    videos = subsample(combine(indexes), args.frame_step)
    train_videos, val_videos = split_videos(videos, args.val_videos, args.seed)
    _log(
        ctx,
        f"data {', '.join(f'{index.root} ({index.layout})' for index in indexes)}: "
        f"train {[v.name for v in train_videos]}, val {[v.name for v in val_videos]}",
    )

    def cache_progress(desc: str) -> Callable[[Iterable[Any], int], Iterable[Any]]:
        return lambda it, n: _progress(ctx, it, n, desc)

    t0 = time.monotonic()
    train_cache = build_cache(train_videos, size, args.workers, cache_progress("caching train"))
    val_cache = build_cache(val_videos, size, args.workers, cache_progress("caching val"))
    _log(
        ctx,
        f"cached {len(train_cache)} train + {len(val_cache)} val frames at {size[0]}x{size[1]} "
        f"({(train_cache.nbytes + val_cache.nbytes) / 2**20:.0f} MiB) in {time.monotonic() - t0:.1f} s",
    )
    return TrainingData(indexes, train_videos, val_videos, train_cache, val_cache)


def root_weights(args: argparse.Namespace, cache: FrameCache) -> dict[str, float]:
    """``--data-weights`` keyed by data set name (the root folder's name, as in the video names); a root whose
    frames are all held out for validation has no training frames and so no weight."""
    names = [root.resolve().name for root in args.data]
    present = cache.root_indices()
    return {name: weight for name, weight in zip(names, args.data_weights, strict=True) if name in present}


def build_loader(args: argparse.Namespace, ctx: Dist, data: TrainingData) -> tuple[CachedFrameDataset, Any, DataLoader]:
    """Augmenting dataset, its sampler (weighted per data set with ``--data-weights``) and the loader."""
    augment_config = None if args.no_augment else augment_preset(args.augment)
    dataset = CachedFrameDataset(data.train, augment_config, args.seed)
    sampler: WeightedRootSampler | DistributedSampler[Any]
    if args.data_weights is not None or args.epoch_samples is not None:
        weights = (
            root_weights(args, data.train)
            if args.data_weights is not None
            else {root: float(len(frames)) for root, frames in data.train.root_indices().items()}
        )
        samples = args.epoch_samples or len(data.train)
        sampler = WeightedRootSampler(data.train, weights, samples, ctx.rank, ctx.world, args.seed)
        _log(ctx, f"each epoch samples {samples} frames: " + ", ".join(f"{r} {n}" for r, n in sampler.counts.items()))
    else:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=args.seed)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.loader_workers,
        pin_memory=ctx.device.type == "cuda",
        drop_last=len(sampler) > args.batch_size,
    )
    return dataset, sampler, loader


@dataclass
class Optimisation:
    """Optimiser, LR schedule, AMP scaler and weight average of one run."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: WeightEMA | None
    budget_used: list[float]  # share of --max-train-minutes used, synchronised over ranks at every step

    def state_dict(self) -> dict[str, Any]:
        """Everything ``--resume`` needs to continue the optimisation."""
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])


def build_optimisation(args: argparse.Namespace, model: nn.Module, steps_per_epoch: int, scale_gradients: bool) -> Optimisation:
    """AdamW with warm-up + cosine decay (following the time budget with ``--anneal-to-budget``)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total_steps = args.epochs * steps_per_epoch
    # default warm-up: 3 % of all steps, at most one epoch (with --anneal-to-budget --epochs is set high on purpose)
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, min(int(0.03 * total_steps), steps_per_epoch))
    budget_used = [0.0]
    time_fraction = (lambda: budget_used[0]) if args.anneal_to_budget else None
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup, time_fraction=time_fraction))
    ema = WeightEMA(model, args.ema) if args.ema > 0 else None
    return Optimisation(optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=scale_gradients), ema, budget_used)


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
    for frames, masks in _progress(ctx, loader, len(loader), "epoch"):
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
        _log(
            ctx,
            f"threshold {chosen:.2f} picked on validation (score {scores['score']:.4f}, IoU {scores['iou']:.4f}); stored in {best_path}",
        )
    return threshold_scores, validation


def _train(args: argparse.Namespace, ctx: Dist, command: str) -> dict[str, Any]:
    start_time = time.monotonic()
    if ctx.device.type == "cpu":
        torch.set_num_threads(args.threads or max(1, usable_cores() // max(1, ctx.local_world)))
    precision = training_precision(args, ctx)
    torch.manual_seed(args.seed)
    check_args(args)
    start = load_start(args, ctx)
    meta = start.meta
    data = load_data(args, ctx, meta.input_size)
    meta.data = data.summary(args)
    dataset, sampler, loader = build_loader(args, ctx, data)

    model = build_segmenter(meta).to(ctx.device)
    for source in (start.resume, start.init):
        if source is not None:
            model.load_state_dict(source["state_dict"])
    precision.prepare_model(model)
    net: nn.Module = (
        DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None) if ctx.enabled else model
    )
    opt = build_optimisation(args, model, len(loader), precision.scales_gradients)
    run = RunState()
    if start.resume is not None and "extra" in start.resume:
        opt.load_state_dict(start.resume["extra"])
        torch.set_rng_state(start.resume["extra"]["torch_rng"])
        run.restore(start.resume["extra"])
    elif start.resume is not None:
        _log(ctx, "note: the resumed checkpoint holds no training state; only the weights are reused")
    meta.training = training_record(args, ctx, command, precision)
    args.out.mkdir(parents=True, exist_ok=True)
    stopped = run_epochs(args, ctx, net, model, loader, (dataset, sampler), opt, run, data.val, meta, precision, start_time)
    ctx.barrier()
    threshold_scores, best = pick_threshold(args, ctx, data.val, precision, run.best_metrics)
    digests = [weights_digest(model)]
    if ctx.enabled:
        gathered: list[Any] = [None] * ctx.world
        dist.all_gather_object(gathered, digests[0])
        digests = [str(d) for d in gathered]
    summary = {
        "best": best,
        "threshold_search_score": threshold_scores,
        "stopped": stopped or "completed",
        "epochs_done": int(run.counters["epoch"]),
        "seconds": round(float(run.counters["seconds"]), 1),
        "world_size": ctx.world,
        "rank_weight_digests": digests,
        "command": command,
    }
    if ctx.main:
        write_metrics(args.out, run.history, summary)
    # Every rank leaves together: a rank that tears gloo down while rank 0 is still writing files
    # can abort in gloo's threads ("terminate called without an active exception", CI 2026-12-03).
    del net
    ctx.barrier()
    return summary


def training_precision(args: argparse.Namespace, ctx: Dist) -> Precision:
    """``--precision`` (or the old ``--amp``/``--no-amp``) resolved for this device; the choice is logged."""
    requested = args.precision
    if args.amp is not None and requested == "auto":
        requested = "fp16" if args.amp else "fp32"
        if args.amp and ctx.device.type != "cuda":
            _log(ctx, "note: --amp only applies on CUDA; using --precision auto on the CPU")
            requested = "auto"
    precision = resolve_precision(requested, ctx.device)
    _log(ctx, f"precision {precision.name}: {precision.reason}")
    return precision


def training_record(args: argparse.Namespace, ctx: Dist, command: str, precision: Precision) -> dict[str, Any]:
    """How the model was trained, as stored in the checkpoint's metadata."""
    return {
        "command": command,
        "seed": args.seed,
        "device": str(ctx.device),
        "world_size": ctx.world,
        "batch_size_per_process": args.batch_size,
        "lr": args.lr,
        "epochs_requested": args.epochs,
        "augment": "none" if args.no_augment else args.augment,
        "amp": precision.name == "fp16",
        "precision": precision.name,
        "precision_reason": precision.reason,
        "loss": "bce_with_logits + soft_dice",
        "ema_decay": args.ema,
        "max_train_minutes": args.max_train_minutes,
        "anneal_to_budget": args.anneal_to_budget,
        "init_from": str(args.init_from) if args.init_from is not None else None,
    }


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
        _log(ctx, f"already trained {counters['epoch']} epochs (--epochs {args.epochs}); nothing to do")
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
        _log(ctx, format_epoch(row, improved))
        if time_up:
            return f"time budget of {args.max_train_minutes} min reached in epoch {epoch}"
        if args.patience > 0 and counters["epochs_since_best"] >= args.patience:
            return f"early stopping: no validation score improvement for {args.patience} epochs"
    return ""


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = "python -m training.train " + shlex.join(argv)
    problem = out_dir_problem(args.out)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        command = f"torchrun --nproc_per_node {os.environ['WORLD_SIZE']} -m training.train " + shlex.join(argv)
    try:
        train(args, command)
    except (DatasetError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
