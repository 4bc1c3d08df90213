"""CLI: generate the synthetic surgical data set or a demo video.

Examples:
  python -m training.generate dataset --out data/synthetic --videos 14 --frames 300 --seed 0
  python -m training.generate video --out demo.mp4 --seed 0 --frames 300 --width 1280 --height 720 --fps 25
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from synthetic import SceneConfig, write_dataset, write_demo_video


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with `dataset` and `video` sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m training.generate",
        description="Procedurally generate surgical endoscopy videos with pixel-exact instrument masks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ds = sub.add_parser("dataset", help="write a data set in the Synthetic-MICCAI dVRK layout "
                        "(Video_0{n}/images/000.png, Video_0{n}/ground_truth/000.png, summary.json)")
    ds.add_argument("--out", type=Path, required=True, help="data set root folder (created if missing)")
    ds.add_argument("--videos", type=int, default=14, help="number of videos (default 14)")
    ds.add_argument("--frames", type=int, default=300, help="frames per video (default 300)")
    ds.add_argument("--seed", type=int, default=0, help="data set seed; per-video seeds derive from it (default 0)")
    ds.add_argument("--width", type=int, default=701, help="frame width in px (default 701)")
    ds.add_argument("--height", type=int, default=538, help="frame height in px (default 538)")
    ds.add_argument("--workers", type=int, default=2, help="parallel processes, one video each (default 2)")
    ds.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    ds.add_argument(
        "--extended-instruments",
        action="store_true",
        help="also white/pale plastic shafts, shafts filling much of the frame and dark ribbed robotic shafts",
    )
    vid = sub.add_parser("video", help="write a demo mp4 (OpenCV 'mp4v') of one generated scene")
    vid.add_argument("--out", type=Path, required=True, help="output .mp4 path")
    vid.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    vid.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    vid.add_argument("--width", type=int, default=1280, help="frame width in px (default 1280)")
    vid.add_argument("--height", type=int, default=720, help="frame height in px (default 720)")
    vid.add_argument("--fps", type=float, default=25.0, help="frames per second (default 25)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "dataset":
        config = SceneConfig(extended_instruments=True) if args.extended_instruments else None
        s = write_dataset(args.out, args.videos, args.frames, args.seed, args.width, args.height,
                          workers=args.workers, progress=not args.no_progress, config=config)
        print(json.dumps({k: s[k] for k in ("videos", "frames", "width", "height", "seed", "seconds",
                                            "seconds_per_frame", "mean_coverage", "empty_frames")}))
        print(f"wrote {s['frames']} frames in {s['seconds']:.1f} s to {args.out} "
              f"(summary: {args.out / 'summary.json'})")
    else:
        start = time.perf_counter()
        path = write_demo_video(args.out, args.seed, args.frames, args.width, args.height, args.fps)
        print(f"wrote {args.frames} frames {args.width}x{args.height} @ {args.fps:g} fps to {path} "
              f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
