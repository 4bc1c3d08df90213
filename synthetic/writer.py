"""Writing generated scenes to disk: Synthetic-MICCAI dVRK dataset layout and demo mp4 videos."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import cv2
import numpy as np

from .config import GENERATOR_VERSION, SceneConfig
from .mp4 import write_mp4
from .video import SceneRenderer


def video_dir_name(n: int) -> str:
    """Dataset video folder name for 1-based index n, with the dataset's quirk: Video_01 … Video_09, Video_010 …"""
    return f"Video_0{n}"


def frame_name(i: int, num_frames: int) -> str:
    """3-digit zero-padded PNG name (more digits only beyond 1000 frames)."""
    digits = max(3, len(str(max(0, num_frames - 1))))
    return f"{i:0{digits}d}.png"


def video_seed(seed: int, n: int) -> int:
    """Per-video seed derived from the dataset seed and the 1-based video index (stable, collision-free in practice)."""
    return int(np.random.SeedSequence([int(seed), int(n)]).generate_state(1, np.uint32)[0])


_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]


def _write_video(args: tuple[Path, int, int, int, int, int, SceneConfig | None]) -> dict:
    root, n, vseed, frames, width, height, config = args
    cv2.setNumThreads(1)
    vdir = root / video_dir_name(n)
    (vdir / "images").mkdir(parents=True, exist_ok=True)
    (vdir / "ground_truth").mkdir(parents=True, exist_ok=True)
    scene = SceneRenderer(vseed, width, height, config)
    coverage, empty = [], 0
    for i in range(frames):
        frame, mask = scene.render(i)
        name = frame_name(i, frames)
        if not (cv2.imwrite(str(vdir / "images" / name), frame, _PNG)
                and cv2.imwrite(str(vdir / "ground_truth" / name), mask, _PNG)):
            raise OSError(f"could not write {vdir / name}")
        c = float(np.count_nonzero(mask)) / mask.size
        coverage.append(c)
        empty += c == 0
    return {"name": video_dir_name(n), "seed": vseed, "frames": frames,
            "instruments": [f"{i.family}:{i.tool}" for i in scene.instruments],
            "mean_coverage": round(float(np.mean(coverage)) if coverage else 0.0, 4),
            "empty_frames": int(empty)}


def write_dataset(root: Path, num_videos: int, frames_per_video: int, seed: int, width: int = 701,
                  height: int = 538, workers: int = 2, progress: bool = True,
                  config: SceneConfig | None = None) -> dict:
    """Write the Synthetic-MICCAI dVRK layout under root; return a JSON-able summary
    (videos, frames, size, seed, per-video seeds, generator version, seconds); also saved as root/summary.json.

    Layout: root/Video_0{n}/images/{i:03d}.png (BGR) and root/Video_0{n}/ground_truth/{i:03d}.png (0/255).
    One process per video (`workers` at a time); workers <= 1 renders in this process.
    """
    if num_videos < 1 or frames_per_video < 1:
        raise ValueError("num_videos and frames_per_video must be >= 1")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(root, n, video_seed(seed, n), frames_per_video, width, height, config) for n in range(1, num_videos + 1)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_videos * frames_per_video, unit="frame", desc="synthetic")
    results: list[dict] = []
    if workers <= 1 or num_videos == 1:
        for job in jobs:
            results.append(_write_video(job))
            if bar is not None:
                bar.update(frames_per_video)
    else:
        with mp.get_context("spawn").Pool(min(workers, num_videos)) as pool:
            for res in pool.imap_unordered(_write_video, jobs):
                results.append(res)
                if bar is not None:
                    bar.update(frames_per_video)
    if bar is not None:
        bar.close()
    results.sort(key=lambda r: jobs_index(r["name"]))
    seconds = time.perf_counter() - start
    total = num_videos * frames_per_video
    summary = {
        "generator": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "extended_instruments": bool(config is not None and config.extended_instruments),
        "layout": "Video_0{n}/images/{i:03d}.png + Video_0{n}/ground_truth/{i:03d}.png",
        "videos": num_videos,
        "frames_per_video": frames_per_video,
        "frames": total,
        "width": width,
        "height": height,
        "seed": seed,
        "video_seeds": {r["name"]: r["seed"] for r in results},
        "per_video": results,
        "mean_coverage": round(float(np.mean([r["mean_coverage"] for r in results])), 4),
        "empty_frames": int(sum(r["empty_frames"] for r in results)),
        "seconds": round(seconds, 2),
        "seconds_per_frame": round(seconds / total, 4),
        "workers": workers,
    }
    tmp = root / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, root / "summary.json")
    return summary


def jobs_index(name: str) -> int:
    """Inverse of video_dir_name."""
    return int(name.split("_", 1)[1])


def write_demo_video(path: Path, seed: int = 0, num_frames: int = 300, width: int = 1280, height: int = 720,
                     fps: float = 25.0, config: SceneConfig | None = None) -> Path:
    """Write an mp4 ('mp4v') of a generated surgical scene, atomically; returns the final path.

    Raises OSError if the folder cannot be made or the OpenCV video writer cannot be opened there.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    scene = SceneRenderer(seed, width, height, config)
    return write_mp4(path, (scene.render(i)[0] for i in range(num_frames)), fps)
