"""Issue 18: can the shipped model's real-footage precision be bought after the network, without training?

``PYTHONPATH=. python docs/benchmarks/issue18-postprocess/probe.py --data D --json OUT.json`` for ``D`` in
``runs/robustmis-val``, ``data/heldout16`` (``--frame-step 10``) and, after the choice, ``../shared/realdev``.

Runs the checkpoint once per frame (and once on the horizontally flipped frame) at its input size, then
scores, pooled over the pixels of each source at the mask's full resolution as ``python -m training.evaluate``
does (probabilities upsampled bilinearly, then thresholded; for the plain model at its threshold the figures
are the evaluator's: ROBUST-MIS validation 0.590, realdev 0.806):

* ``threshold T``: the plain model at other thresholds;
* ``hysteresis H``: connected regions of ``p ≥ threshold`` (8-connected, at the model's 256×320) kept only if
  they reach ``p ≥ H`` somewhere; the others are zeroed before the upsampling;
* ``min area A``: regions smaller than ``A`` of the frame dropped;
* ``border A``: regions that touch no frame edge dropped unless they cover ``A`` of the frame (instruments
  enter from outside the view);
* ``flip``: the flipped frame's probabilities flipped back; ``flip average``: the mean of both (test-time
  augmentation at twice the inference cost).

Choose on the training data's validation split (ROBUST-MIS ``prokto3`` + ``rektum3``, generated held-out);
``../shared/realdev`` may be scored after a choice, to see whether it carries over.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from models.frame_model import resize_to_input
from training.datasets import DEFAULT_GROUP_BY, discover, load_pair, subsample
from training.metrics import ConfusionCounts, confusion

Row = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # source, probability, flipped probability, mask


def model_rows(checkpoint: Path, data: Path, frame_step: int) -> tuple[float, list[Row]]:
    """The checkpoint's threshold and, per frame, its source, probabilities (plain, flipped back) and mask."""
    model, meta = load_checkpoint(checkpoint)
    model.eval()
    rows: list[Row] = []
    with torch.no_grad():
        for video in subsample(discover(data, "auto", DEFAULT_GROUP_BY).videos, frame_step):
            for pair in video.frames:
                image, mask = load_pair(pair)
                small = resize_to_input(image, meta.input_size)
                batch = torch.from_numpy(np.stack([small, np.ascontiguousarray(small[:, ::-1])]))
                prob = torch.sigmoid(model(batch).float())[:, 0].numpy()
                rows.append((video.name, prob[0], np.ascontiguousarray(prob[1][:, ::-1]), mask > 0))
    return meta.threshold, rows


def drop_regions(prob: np.ndarray, threshold: float, keep: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``prob`` with the regions of ``prob ≥ threshold`` that ``keep(stats, peaks)`` rejects set to 0."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((prob >= threshold).astype(np.uint8), connectivity=8)
    if count <= 1:
        return prob
    peaks = np.zeros(count)
    np.maximum.at(peaks, labels.ravel(), prob.ravel())
    kept = keep(stats, peaks)
    kept[0] = True
    out = prob.copy()
    out[~kept[labels]] = 0.0
    return out


def touches_edge(stats: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per region: whether its bounding box reaches a frame edge."""
    x, y, w, h = (stats[:, k] for k in range(4))
    return (x == 0) | (y == 0) | (x + w == shape[1]) | (y + h == shape[0])


def variants(threshold: float) -> Iterator[tuple[str, float, Callable[[Row], np.ndarray]]]:
    """``(name, threshold, row → probability)`` of every rule scored."""
    for value in (0.15, 0.2, 0.25, threshold, 0.4, 0.5):
        yield f"threshold {value:g}", value, lambda row: row[1]
    for high in (0.6, 0.8, 0.9):
        yield f"hysteresis {high:g}", threshold, lambda row, h=high: drop_regions(
            row[1], threshold, lambda stats, peaks: peaks >= h)
    for area in (0.001, 0.003, 0.01):
        yield f"min area {area:g}", threshold, lambda row, a=area: drop_regions(
            row[1], threshold, lambda stats, peaks: stats[:, cv2.CC_STAT_AREA] >= a * row[1].size)
    for area in (0.005, 0.02, 0.05):
        yield f"border {area:g}", threshold, lambda row, a=area: drop_regions(
            row[1], threshold, lambda stats, peaks: touches_edge(stats, row[1].shape)
            | (stats[:, cv2.CC_STAT_AREA] >= a * row[1].size))
    yield "flip", threshold, lambda row: row[2]
    yield "flip average", threshold, lambda row: (row[1] + row[2]) / 2


def score(rows: list[Row], threshold: float, probability: Callable[[Row], np.ndarray]) -> dict[str, dict[str, float]]:
    """Pooled IoU, precision and recall per source and ``overall`` (``training.metrics``, as the evaluator)."""
    counts: dict[str, ConfusionCounts] = {}
    for row in rows:
        mask = row[3]
        full = cv2.resize(probability(row), (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
        frame = confusion(full >= threshold, mask)
        for key in (row[0], "overall"):
            counts.setdefault(key, ConfusionCounts())
            counts[key] += frame
    return {key: {name: round(value.metrics()[name], 4) for name in ("iou", "precision", "recall")}
            for key, value in counts.items()}


def main() -> None:
    """Print a line per rule and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--frame-step", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    threshold, rows = model_rows(args.checkpoint, args.data, args.frame_step)
    results = {}
    for name, value, probability in variants(threshold):
        results[name] = score(rows, value, probability)
        print(f"{name:16s}", "  ".join(f"{key} {m['iou']:.3f} (P {m['precision']:.2f} R {m['recall']:.2f})"
                                       for key, m in sorted(results[name].items())))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "data": str(args.data),
                                         "frame_step": args.frame_step, "model_threshold": threshold,
                                         "frames": len(rows), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
