"""Issue 21: preprocess and compose before/after on one core, interleaved in one run (relative figures).

``PYTHONPATH=. python docs/benchmarks/issue21/stages_ab.py --json docs/benchmarks/issue21/stages-ab.json``: for 720p
and 1080p scene frames (the live bench's source) with the shipped model's masks, the median time of
the old exact ``INTER_AREA`` resize against ``resize_to_input_fast``, and of the old one-box overlay
(kept here as :func:`old_draw`) against ``Overlayer.draw``, each pair timed back to back on the same
frame, ``cv2.setNumThreads(1)``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from app.core.overlay import Overlayer, OverlayStyle, ViewState
from app.size import Size
from app.sources.live import scene_frames
from engine.backends import create_backend
from models.checkpoint import DEFAULT_CHECKPOINT
from models.frame_model import resize_to_input, resize_to_input_fast


def old_draw(style: OverlayStyle, colors: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The overlay view before issue 21: one bounding box, every contour point drawn."""
    x, y, w, h = cv2.boundingRect(mask)
    roi, mask_roi = frame[y : y + h, x : x + w], mask[y : y + h, x : x + w]
    blended = cv2.addWeighted(roi, 1.0 - style.alpha, colors[y : y + h, x : x + w], style.alpha, 0.0)
    cv2.copyTo(blended, mask_roi, roi)
    contours, _ = cv2.findContours(mask_roi, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x, y))
    cv2.drawContours(frame, contours, -1, style.color, style.contour_thickness, cv2.LINE_AA)
    return frame


def _timed(call: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    call(*args)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    """Print and write the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    backend = create_backend(DEFAULT_CHECKPOINT, "onnxruntime-cpu", threads=1)
    style, view = OverlayStyle(), ViewState()
    report: dict[str, object] = {"load_average_before": os.getloadavg()[0], "rounds": args.rounds, "sizes": {}}
    for name, (width, height) in {"720p": (1280, 720), "1080p": (1920, 1080)}.items():
        frames = scene_frames(width, height, 6)
        overlayer = Overlayer(style, backend.threshold)
        masks = [overlayer.mask(backend.predict(frame), Size(height=height, width=width)) for frame in frames]
        colors = np.empty((height, width, 3), np.uint8)
        colors[:] = style.color
        times: dict[str, list[float]] = {key: [] for key in ("preprocess_before", "preprocess_after", "compose_before", "compose_after")}
        for _ in range(args.rounds):
            for frame, mask in zip(frames, masks, strict=True):
                times["preprocess_before"].append(_timed(resize_to_input, frame, backend.input_size))
                times["preprocess_after"].append(_timed(resize_to_input_fast, frame, backend.input_size))
                times["compose_before"].append(_timed(old_draw, style, colors, frame.copy(), mask))
                times["compose_after"].append(_timed(overlayer.draw, frame.copy(), mask, view))
        medians = {key: round(float(np.median(values)), 3) for key, values in times.items()}
        report["sizes"][name] = medians  # type: ignore[index]
        print(name, medians)
    report["load_average_after"] = os.getloadavg()[0]
    backend.close()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
