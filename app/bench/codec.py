"""``python -m app.bench.codec``: what each recording encoder costs per frame (the ``--codec``/preset choice).

Encodes the frames of a generated video (the one ``python -m app.bench`` uses) with ``mp4v`` (FFmpeg's
``mpeg4`` through PyAV; OpenCV's writer without PyAV) and with ``libx264`` at several presets (and
``h264_nvenc`` where it opens), on the calling thread, and prints wall and CPU milliseconds per frame and
the size per frame. CPU time counts every thread of the process (x264 runs its own), so it is the figure
that matters on a machine whose cores the inference already keeps busy. Encoders are run in turn,
``--rounds`` times, and the median per encoder is shown.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from app.bench.__main__ import SIZES, process_cpu_seconds
from app.demo import generated_video
from app.outputs.encoders import encoder_opens, open_encoder
from app.size import Size

PRESETS = ("ultrafast", "superfast", "veryfast")


def encode_cost(frames: list[np.ndarray], path: Path, codec: str, preset: str | None) -> dict[str, float]:
    """Wall and CPU ms per frame, and KiB per frame, of encoding ``frames`` into ``path``."""
    started, cpu_started = time.perf_counter(), process_cpu_seconds()
    encoder = open_encoder(path, codec, 25.0, Size.of(frames[0]), preset)
    for frame in frames:
        encoder.encode(frame)
    encoder.finish()
    wall, cpu = time.perf_counter() - started, process_cpu_seconds() - cpu_started
    n = len(frames)
    return {"wall_ms": wall * 1000 / n, "cpu_ms": cpu * 1000 / n, "kib": path.stat().st_size / 1024 / n}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m app.bench.codec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="720p,1080p", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--frames", type=int, default=60, help="frames per video (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="times each encoder runs, median shown (default 3)")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if any(s not in SIZES for s in sizes) or args.frames < 10 or args.rounds < 1:
        print(f"error: --sizes {args.sizes} --frames {args.frames} --rounds {args.rounds}: expected sizes from "
              f"{list(SIZES)}, frames ≥ 10, rounds ≥ 1", file=sys.stderr)  # fmt: skip
        return 2
    encoders: list[tuple[str, str | None]] = [("mp4v", None)] + [("libx264", p) for p in PRESETS]
    if encoder_opens("h264_nvenc"):
        encoders.append(("h264_nvenc", None))
    print(f"{'video':<8}{'encoder':<22}{'wall ms':>9}{'CPU ms':>9}{'KiB/frame':>11}")
    with tempfile.TemporaryDirectory(prefix="surgseg-codec-") as tmp:
        for size in sizes:
            capture = cv2.VideoCapture(str(generated_video(args.frames, width=SIZES[size].width, height=SIZES[size].height)))
            frames = []
            while (frame := capture.read()[1]) is not None:
                frames.append(frame)
            capture.release()
            runs: dict[tuple[str, str | None], list[dict[str, float]]] = {e: [] for e in encoders}
            for _ in range(args.rounds):
                for codec, preset in encoders:
                    runs[(codec, preset)].append(encode_cost(frames, Path(tmp) / f"{codec}.mp4", codec, preset))
            for (codec, preset), results in runs.items():
                wall, cpu, kib = (statistics.median(r[k] for r in results) for k in ("wall_ms", "cpu_ms", "kib"))
                name = f"{codec} {preset}" if preset else codec
                print(f"{size:<8}{name:<22}{wall:>9.1f}{cpu:>9.1f}{kib:>11.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
