"""Adapt a shipped model to your footage in a few minutes:
``python -m training.adapt --data DIR [DIR ...] --checkpoint models/weights/default.pt --minutes 10 --out DIR``.

``--data`` holds your labelled frames in the ``folders`` layout (``DIR/images`` + ``DIR/masks``, as written by
``python -m training.labels import``). Part of them is held back (by video where the names give several,
else spread over the recording); the model is fine-tuned on the rest mixed with generated scenes (so it
keeps what it knew), for as long as ``--minutes`` allows; the threshold is picked on the held-back frames.

Writes ``OUT/model.pt`` (a normal checkpoint: ``python -m app --checkpoint OUT/model.pt`` runs it),
``OUT/report.md`` and ``OUT/report.json`` (IoU/precision/recall before and after on the held-back frames,
and on generated validation scenes, to show what was forgotten), ``OUT/before_after.png`` and the
training run in ``OUT/train/``. The whole command takes about ``--minutes``, scoring included.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from models.atomic_io import atomic_write_text
from models.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint, save_checkpoint
from models.frame_model import FrameSegmenter
from training.adapt_data import HOLDOUT_FRACTION, check_user_frames, generated_scenes, generated_split, link_folder, split_user_frames
from training.adapt_report import before_after_grid, report_markdown, score
from training.cli_checks import out_dir_problem
from training.datasets import DEFAULT_GROUP_BY, DatasetError
from training.precision import PRECISIONS, resolve_precision
from training.step_bench import time_steps
from training.train import main as train_main

#: Sampling weights: your training frames, then the generated scenes.
DATA_WEIGHTS = (2.0, 1.0)
BATCH_SIZE = 8
LEARNING_RATE = 5e-4
#: Validations (epochs) the training budget is split into, at least.
EPOCHS_IN_BUDGET = 5


class BudgetBar:
    """A progress bar over the wall-clock budget, with the current phase and an ETA; updated by a thread."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.bar = tqdm(total=round(seconds), unit="s", desc="adapt", file=sys.stderr, disable=not sys.stderr.isatty(),
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s [ETA {remaining}]")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="adapt-progress", daemon=True)
        self.thread.start()

    def phase(self, text: str) -> None:
        """Name the current phase (also logged as a line)."""
        self.bar.set_description_str(f"adapt: {text}")
        print(f"[adapt {time.monotonic() - self.start:5.0f} s] {text}", file=sys.stderr, flush=True)

    def _run(self) -> None:
        while not self.done.wait(1.0):
            self.bar.n = min(self.bar.total, round(time.monotonic() - self.start))
            self.bar.refresh()

    def close(self) -> None:
        """Stop the bar."""
        self.done.set()
        self.thread.join()
        self.bar.close()


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m training.adapt``."""
    p = argparse.ArgumentParser(prog="python -m training.adapt", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="your labelled frames (folders layout: DIR/images, DIR/masks)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="model to adapt (default: the shipped default)")
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of the whole command (default 10)")
    p.add_argument("--out", type=Path, required=True, help="folder for model.pt, report.md/json, before_after.png")
    p.add_argument("--group-by", default=DEFAULT_GROUP_BY, help="regex on file stems giving the video (to hold back whole videos)")
    p.add_argument("--generated", type=Path, help="generated data set to mix in (default: made once and cached)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="training precision (see python -m training.train)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    return p


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def training_speed(model: FrameSegmenter, args: argparse.Namespace, device: torch.device, input_size: tuple[int, int]) -> float:
    """Training frames/s of ``model`` here, from one timed step (after a warm-up step) at the adaptation batch size.
    The steps change ``model``'s weights: pass a model that is not used afterwards."""
    precision = resolve_precision(args.precision, device)
    model = precision.prepare_model(model.to(device))
    frames = torch.randint(0, 256, (BATCH_SIZE, *input_size, 3), dtype=torch.uint8).to(device)
    masks = torch.zeros(BATCH_SIZE, 1, *input_size, device=device)
    return BATCH_SIZE / time_steps(model, precision, frames, masks, steps=1)


def epoch_samples(frames_per_s: float, train_seconds: float) -> int:
    """Frames per epoch so that the training budget holds about :data:`EPOCHS_IN_BUDGET` epochs (validations)."""
    return max(2 * BATCH_SIZE, int(frames_per_s * train_seconds / EPOCHS_IN_BUDGET * 0.8) // BATCH_SIZE * BATCH_SIZE)


def adapt(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the whole adaptation; returns the report (also written to ``OUT/report.json``)."""
    budget = 60.0 * args.minutes
    bar = BudgetBar(budget)
    try:
        return _adapt(args, command, bar, budget)
    finally:
        bar.close()


def _adapt(args: argparse.Namespace, command: str, bar: BudgetBar, budget: float) -> dict[str, Any]:
    device = _device(args.device)
    bar.phase("checking your frames")
    user = check_user_frames(args.data, args.group_by)
    train_pairs, held_pairs, how = split_user_frames(user, HOLDOUT_FRACTION)
    work = args.out / "work"
    yours_train, yours_held = link_folder(train_pairs, work / "yours-train"), link_folder(held_pairs, work / "yours-heldback")
    bar.phase("generated scenes")
    generated = args.generated if args.generated is not None else generated_scenes()
    gen_val_names, gen_val_pairs = generated_split(generated)
    model, meta = load_checkpoint(args.checkpoint)
    bar.phase(f"scoring {args.checkpoint} before adaptation")
    scoring_start = time.monotonic()
    before_held = score(model, meta.input_size, held_pairs, keep=True, device=str(device))
    before_gen = score(model, meta.input_size, gen_val_pairs, device=str(device))
    reserve = 1.3 * (time.monotonic() - scoring_start) + 10.0  # scoring after, the grid, the checkpoint
    frames_per_s = training_speed(model, args, device, meta.input_size)  # the starting model is not needed after scoring
    train_seconds = budget - (time.monotonic() - bar.start) - reserve
    if train_seconds < 30:
        raise ValueError(f"--minutes {args.minutes:g} leaves {train_seconds:.0f} s for training after checking and scoring; "
                         f"give at least {(budget - train_seconds + 60) / 60:.1f} minutes")
    samples = epoch_samples(frames_per_s, train_seconds)
    bar.phase(f"training {train_seconds / 60:.1f} min at about {frames_per_s:.1f} frames/s ({samples} frames per epoch)")
    train_out = args.out / "train"
    train_argv = [
        "--data", str(yours_train), str(generated), str(yours_held), "--data-weights", *map(str, (*DATA_WEIGHTS, 1.0)),
        "--group-by", "", "--val-videos", ",".join([f"{yours_held.name}/{yours_held.name}", *gen_val_names]),
        "--epoch-samples", str(samples), "--epochs", "100000", "--max-train-minutes", f"{train_seconds / 60:.3f}",
        "--anneal-to-budget", "--warmup-steps", "10", "--augment", "footage+negatives", "--init-from", str(args.checkpoint),
        "--out", str(train_out), "--batch-size", str(BATCH_SIZE), "--lr", str(LEARNING_RATE), "--patience", "0",
        "--seed", str(args.seed), "--precision", args.precision, "--device", str(device.type), "--no-pick-threshold",
    ]
    if train_main(train_argv) != 0:
        raise RuntimeError(f"training failed; its log and metrics are in {train_out}")
    bar.phase("scoring the adapted model")
    adapted, adapted_meta = load_checkpoint(train_out / "best.pt")
    after_held = score(adapted, adapted_meta.input_size, held_pairs, keep=True, device=str(device))
    after_gen = score(adapted, adapted_meta.input_size, gen_val_pairs, device=str(device))
    threshold, repicked = after_held.best_threshold(), before_held.best_threshold()
    metrics = json.loads((train_out / "metrics.json").read_text()) if (train_out / "metrics.json").is_file() else {}
    report: dict[str, Any] = {
        "command": command, "checkpoint": str(args.checkpoint), "model": str(args.out / "model.pt"), "threshold": threshold,
        "minutes": args.minutes, "device": str(device),
        "frames": {"total": user.count, "with_instrument": user.with_instrument, "train": len(train_pairs),
                   "held_back": len(held_pairs), "split": how, "held_back_names": [p.name for p in held_pairs]},
        "generated": {"folder": str(generated), "frames": sum(1 for _ in generated.glob("*/images/*")),
                      "validation_videos": gen_val_names},
        "training": {"data_weights": list(DATA_WEIGHTS), "epoch_samples": samples, "lr": LEARNING_RATE,
                     "frames_per_s_measured": round(frames_per_s, 2),
                     "seconds": round(train_seconds, 1), "epochs": metrics.get("epochs_done"),
                     "precision": adapted_meta.training.get("precision"), "run": str(train_out)},
        "held_back": {
            "before": {"threshold": meta.threshold, **before_held.metrics(meta.threshold)},
            "before_repicked": {"threshold": repicked, **before_held.metrics(repicked)},
            "after": {"threshold": threshold, **after_held.metrics(threshold)},
        },
        "generated_validation": {
            "before": {"threshold": meta.threshold, **before_gen.metrics(meta.threshold)},
            "after": {"threshold": threshold, **after_gen.metrics(threshold)},
        },
        "notes": _notes(user.count, len(held_pairs), before_gen.metrics(meta.threshold), after_gen.metrics(threshold)),
    }
    report["grid"] = str(before_after_grid(args.out / "before_after.png", held_pairs, before_held, after_held,
                                           (meta.threshold, threshold)))
    adapted_meta.threshold = threshold
    adapted_meta.metrics = {**adapted_meta.metrics, "adaptation": {k: report[k] for k in ("held_back", "generated_validation", "frames")}}
    save_checkpoint(args.out / "model.pt", adapted, adapted_meta)
    report["seconds"] = round(time.monotonic() - bar.start, 1)
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out / "report.md", report_markdown(report))
    return report


def _notes(total: int, held: int, gen_before: dict[str, float], gen_after: dict[str, float]) -> list[str]:
    notes = []
    if held < 10:
        notes.append(f"only {held} frames held back: the before/after figures can move by several points with one frame")
    if gen_after["iou"] < gen_before["iou"] - 0.03:
        notes.append(f"generated validation fell by {gen_before['iou'] - gen_after['iou']:.3f} IoU: the model forgot some of what it "
                     "knew; label more varied frames or adapt for less time")
    if total < 20:
        notes.append(f"{total} labelled frames: 20 or more from several scenes of the recording adapt more reliably")
    return notes


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit 2 with a message for unusable input."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    problem = out_dir_problem(args.out)
    if problem is None and (args.out / "model.pt").exists():
        problem = f"--out {args.out}: already holds an adapted model.pt; choose a new folder (nothing was changed)"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        report = adapt(args, "python -m training.adapt " + shlex.join(argv))
    except (DatasetError, CheckpointError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    held = report["held_back"]
    print(report_markdown(report).split("## Generated")[0].strip())
    print(f"\nadapted model: {report['model']} (IoU on your held-back frames {held['before']['iou']:.3f} -> {held['after']['iou']:.3f}); "
          f"report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
