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

The work is split by job: :mod:`training.train_args` (command line), :mod:`training.train_dist` (the
distributed context), :mod:`training.train_data` (data, cache, loader), :mod:`training.train_optim` (optimiser,
schedule), :mod:`training.losses`, :mod:`training.train_loop` (the epochs, checkpoints, metrics files) and
:mod:`training.train_validation` (validation, threshold choice); this module puts them together.

Multi-process: ``torchrun --nproc_per_node N -m training.train ...`` uses DistributedDataParallel
(nccl on CUDA, gloo on CPU); rank 0 logs and writes files, validation counts are all-reduced.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models.checkpoint import ModelMeta, build_segmenter, checkpoint_meta, read_checkpoint, weights_digest
from models.cpu import usable_cores
from training.cli_checks import out_dir_problem
from training.datasets import DatasetError
from training.precision import Precision, resolve_precision
from training.train_args import build_parser, check_args, model_config, resolve_resume
from training.train_data import build_loader, load_data, opencv_threads
from training.train_dist import Dist, log
from training.train_loop import RunState, run_epochs, write_metrics
from training.train_optim import build_optimisation
from training.train_validation import pick_threshold


def train(args: argparse.Namespace, command: str = "") -> dict[str, Any]:
    """Run training as configured by ``args`` (see :func:`build_parser`); returns the summary dict."""
    ctx = Dist(args.device)
    try:
        with opencv_threads(1 if args.loader_workers > 0 else None):
            return _train(args, ctx, command)
    finally:
        ctx.close()


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
            log(ctx, f"{label} {path} (config {meta.config}, input {meta.input_height}x{meta.input_width})")
            return StartPoint(meta, resume=payload if path == resume_path else None, init=None if path == resume_path else payload)
    if args.resume == "auto":
        log(ctx, f"--resume: {args.out / 'last.pt'} does not exist yet; starting a new run")
    return StartPoint(ModelMeta(model_config(args), input_height=args.input_size[0], input_width=args.input_size[1]))


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
        log(ctx, "note: the resumed checkpoint holds no training state; only the weights are reused")
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
    # Every rank leaves together. CI (2026-12-03) saw rank 1 abort in gloo ("terminate called without an
    # active exception") after training, most likely tearing the group down while rank 0 still wrote files.
    del net
    ctx.barrier()
    return summary


def training_precision(args: argparse.Namespace, ctx: Dist) -> Precision:
    """``--precision`` (or the old ``--amp``/``--no-amp``) resolved for this device; the choice is logged."""
    requested = args.precision
    if args.amp is not None and requested == "auto":
        requested = "fp16" if args.amp else "fp32"
        if args.amp and ctx.device.type != "cuda":
            log(ctx, "note: --amp only applies on CUDA; using --precision auto on the CPU")
            requested = "auto"
    precision = resolve_precision(requested, ctx.device)
    log(ctx, f"precision {precision.name}: {precision.reason}")
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
