"""Evaluate a checkpoint per video/source and overall:
``python -m training.evaluate --checkpoint PATH --data DIR --out DIR``.

Each frame is resized to the checkpoint's ModelMeta input size and run through the model; the
probabilities are upsampled BILINEARLY to the mask's ORIGINAL resolution and thresholded
there (ModelMeta.threshold unless ``--threshold``), so scores are at full resolution. Metrics
(IoU, Dice, precision, recall, pixel accuracy, all-background accuracy) are pooled over all
pixels of a video / of the whole set; ``mean_frame_iou`` is the mean of per-frame IoUs.

Writes ``report.json`` (checkpoint path and weights digest, data root, input size, exact
command, per-video and overall metrics, the worst frames of each video) and ``grid.png``, a
failure gallery: the ``--grid-frames`` lowest-IoU frames of each video, worst first
(image | ground truth | prediction with TP green, FP red, FN blue), and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.atomic_io import atomic_write_text
from models.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint, weights_digest
from models.frame_model import resize_to_input
from training.cli_checks import out_dir_problem
from training.datasets import DEFAULT_GROUP_BY, LAYOUTS, DatasetError, discover, load_pair, subsample
from training.metrics import METRIC_NAMES, ConfusionCounts, confusion
from training.plots import grid_row, write_grid

SCORING_NOTE = (
    "model run at the checkpoint input size; probabilities upsampled bilinearly to each mask's original "
    "resolution, then thresholded; metrics pooled over all pixels (mean_frame_iou = mean of per-frame IoU)"
)


class WorstFrames:
    """The ``count`` lowest-IoU frames seen so far, with their grid rows (built only for candidates)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.kept: list[tuple[float, str, np.ndarray]] = []

    def offer(self, iou: float, name: str, image: np.ndarray, mask: np.ndarray, pred: np.ndarray) -> None:
        """Keep this frame if it is among the worst so far."""
        if self.count <= 0 or (len(self.kept) >= self.count and iou >= self.kept[-1][0]):
            return
        self.kept.append((iou, name, grid_row(image, mask, pred, f"{name}  IoU {iou:.3f}")))
        self.kept.sort(key=lambda kept: kept[0])
        del self.kept[self.count :]

    def names(self) -> list[dict[str, Any]]:
        """The kept frames, worst first, as ``{"frame", "iou"}``."""
        return [{"frame": name, "iou": iou} for iou, name, _ in self.kept]

    def rows(self) -> list[np.ndarray]:
        """Their grid rows, worst first."""
        return [row for _, _, row in self.kept]


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str] = DEFAULT_CHECKPOINT,
    data: str | os.PathLike[str] = ".",
    out: str | os.PathLike[str] | None = None,
    layout: str = "auto",
    group_by: str | None = DEFAULT_GROUP_BY,
    threshold: float | None = None,
    batch_size: int = 4,
    frame_step: int = 1,
    grid_frames: int = 3,
    device: str = "cpu",
    command: str = "",
) -> dict[str, Any]:
    """Score ``checkpoint`` on the dataset at ``data``; write ``report.json`` + ``grid.png`` into ``out`` if given.

    Returns the report dict (``videos``: per-video metrics, ``overall``: pooled metrics).
    """
    start = time.monotonic()
    model, meta = load_checkpoint(checkpoint)
    model = model.to(device)
    thr = meta.threshold if threshold is None else threshold
    if not 0.0 < thr < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {thr}")
    index = discover(data, layout, group_by)
    videos = subsample(index.videos, frame_step)
    size = meta.input_size
    per_video: dict[str, dict[str, float]] = {}
    overall = ConfusionCounts()
    rows: list[np.ndarray] = []
    worst: dict[str, list[dict[str, Any]]] = {}
    with ThreadPoolExecutor(2) as pool, torch.no_grad():
        for video in videos:
            counts = ConfusionCounts()
            gallery = WorstFrames(grid_frames)
            for begin in range(0, len(video.frames), batch_size):
                pairs = video.frames[begin : begin + batch_size]
                loaded = list(pool.map(load_pair, pairs))
                batch = np.stack([resize_to_input(image, size) for image, _ in loaded])
                prob = torch.sigmoid(model(torch.from_numpy(batch).to(device)).float()).cpu()
                for offset, ((image, mask), pair) in enumerate(zip(loaded, pairs, strict=True)):
                    full = F.interpolate(
                        prob[offset : offset + 1], size=mask.shape, mode="bilinear", align_corners=False
                    )
                    pred = (full[0, 0] >= thr).numpy()
                    frame_counts = confusion(pred, mask)
                    counts += frame_counts
                    gallery.offer(frame_counts.metrics()["iou"], pair.name, image, mask, pred)
            per_video[video.name] = counts.metrics()
            worst[video.name] = gallery.names()
            rows += gallery.rows()
            overall += counts
    report: dict[str, Any] = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "weights_digest": weights_digest(model),
        "data_root": str(index.root.resolve()),
        "layout": index.layout,
        "group_by": group_by if index.layout == "folders" else None,
        "frame_step": frame_step,
        "input_size": [meta.input_height, meta.input_width],
        "threshold": thr,
        "scoring": SCORING_NOTE,
        "command": command,
        "videos": per_video,
        "overall": overall.metrics(),
        "worst_frames": worst,
        "seconds": round(time.monotonic() - start, 2),
    }
    if out is not None:
        out = Path(out)
        report["grid"] = str(write_grid(out / "grid.png", rows))
        atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    return report


def format_table(report: dict[str, Any]) -> str:
    """Fixed-width table of per-video and overall metrics."""
    columns = ("frames", *METRIC_NAMES, "mean_frame_iou")
    headers = ("frames", "IoU", "Dice", "prec", "recall", "acc", "all-bg acc", "frame IoU")
    name_width = max(8, *(len(n) for n in report["videos"]))
    lines = [f"{'video':<{name_width}} " + " ".join(f"{h:>10}" for h in headers)]
    entries = list(report["videos"].items()) + [("OVERALL", report["overall"])]
    for name, m in entries:
        cells = [f"{int(m['frames']):>10d}"] + [f"{m[c]:>10.4f}" for c in columns[1:]]
        lines.append(f"{name:<{name_width}} " + " ".join(cells))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m training.evaluate``."""
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"default {DEFAULT_CHECKPOINT}")
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--layout", default="auto", choices=LAYOUTS)
    p.add_argument(
        "--group-by",
        default=DEFAULT_GROUP_BY,
        help="folders layout: regex on file stems whose first group (or group 'source') names the source; "
        f"'' = one group. Default {DEFAULT_GROUP_BY!r}",
    )
    p.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="report folder (default runs/evaluate)")
    p.add_argument("--threshold", type=float, default=None, help="override the checkpoint's threshold")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--frame-step", type=int, default=1)
    p.add_argument("--grid-frames", type=int, default=3, help="worst frames per video in grid.png (the failure gallery)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = "python -m training.evaluate " + shlex.join(argv)
    problem = out_dir_problem(args.out)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        report = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            args.out,
            layout=args.layout,
            group_by=args.group_by or None,
            threshold=args.threshold,
            batch_size=args.batch_size,
            frame_step=args.frame_step,
            grid_frames=args.grid_frames,
            device=args.device,
            command=command,
        )
    except (DatasetError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(report))
    print(f"threshold {report['threshold']}; {SCORING_NOTE}")
    print(f"wrote {args.out / 'report.json'} and {report['grid']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
