"""The command line of ``python -m training.train``: the parser, the checks on its values, and what they name
(the model configuration, the checkpoint to resume)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from models.sizes import parse_size
from models.unet import UNetConfig, preset
from training.augment import AUGMENT_PRESETS
from training.datasets import DEFAULT_GROUP_BY, LAYOUTS
from training.precision import PRECISIONS

#: The parser's description: the first line of :mod:`training.train`'s docstring.
DESCRIPTION = "Train the U-Net end to end on uint8 BGR frames: ``python -m training.train --data DIR --out runs/NAME``."


def parse_val_videos(text: str) -> int | list[str]:
    """A count (``"2"``) or comma-separated video names (``"Video_03,Video_07"``)."""
    return int(text) if text.strip().isdigit() else [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m training.train``."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=DESCRIPTION)
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
