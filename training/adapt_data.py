"""The data of ``python -m training.adapt``: the user's frames checked and split, and the generated scenes mixed in.

The user's frames are split into frames to train on and frames held back (to pick the threshold and
to score before/after): by video where the file names give several videos (``--group-by``), else
evenly spread over the recording. Each split becomes a folder of links (``folders`` layout) under the
run's work folder, so ``training.train`` reads them like any other data set and nothing is copied.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.paths import cache_root
from models.sorting import natural_key
from synthetic.writer import write_dataset
from training.datasets import DatasetError, FramePair, Video, discover, read_mask

MIN_FRAMES = 5
#: Share of the user's frames held back for the threshold and the before/after scores.
HOLDOUT_FRACTION = 0.3
#: Generated scenes mixed into every adaptation (cached; the per-video seeds derive from the seed).
GENERATED = {"videos": 16, "frames": 8, "seed": 7000, "width": 320, "height": 256}


@dataclass
class UserFrames:
    """The user's frames: every video found in ``--data``, with how many frames show an instrument."""

    videos: list[Video]
    with_instrument: int

    @property
    def count(self) -> int:
        """All frames."""
        return sum(len(v.frames) for v in self.videos)


def check_user_frames(roots: Sequence[Path], group_by: str | None) -> UserFrames:
    """Discover and check the user's frames; :class:`DatasetError` names the problem.

    Refuses fewer than :data:`MIN_FRAMES` frames, masks that are not binary (named with the values
    found) and a set where no frame shows an instrument."""
    videos: list[Video] = []
    for root in roots:
        index = discover(root, "auto", group_by)
        videos += [Video(f"{Path(root).name}/{v.name}", v.frames) for v in index.videos]
    total = sum(len(v.frames) for v in videos)
    if total < MIN_FRAMES:
        raise DatasetError(f"--data {' '.join(map(str, roots))}: {total} labelled frames found; adaptation needs at least {MIN_FRAMES}")
    with_instrument = 0
    for video in videos:
        for pair in video.frames:
            if pair.union_labels:
                raise DatasetError(f"{pair.image}: label maps (several masks per frame) are not supported by adapt; "
                                   "import them with python -m training.labels")
            with_instrument += bool(read_mask(pair.masks[0]).any())  # DatasetError naming the file if not binary
    if with_instrument == 0:
        raise DatasetError(f"--data {' '.join(map(str, roots))}: none of the {total} masks marks an instrument; "
                           "label at least a few frames that show one")
    return UserFrames(videos, with_instrument)


def split_user_frames(frames: UserFrames, fraction: float = HOLDOUT_FRACTION) -> tuple[list[FramePair], list[FramePair], str]:
    """``(train, held back, how)``: whole videos where there are several, else every k-th frame of the recording."""
    videos = sorted(frames.videos, key=lambda v: natural_key(v.name))
    target = max(2, round(fraction * frames.count))
    if len(videos) >= 2:
        held: list[Video] = []
        # hold back whole videos from the end of the list until the target is reached (at least one stays for training)
        for video in reversed(videos):
            if sum(len(v.frames) for v in held) >= target or len(held) == len(videos) - 1:
                break
            held.append(video)
        train = [pair for v in videos if v not in held for pair in v.frames]
        back = [pair for v in held for pair in v.frames]
        if len(back) >= 2 and len(train) >= 3:
            return train, back, f"by video: {', '.join(v.name for v in reversed(held))} held back"
    pairs = [pair for v in videos for pair in sorted(v.frames, key=lambda p: natural_key(p.image.stem))]
    step = max(2, round(len(pairs) / target))
    back = pairs[step // 2 :: step]
    train = [p for i, p in enumerate(pairs) if i % step != step // 2]
    how = (f"every {step}th frame in name order ({len(back)} frames; one recording, so the held-back frames are "
           "neighbours of training frames and their scores are optimistic)")
    return train, back, how


def link_folder(pairs: Sequence[FramePair], folder: Path) -> Path:
    """A ``folders``-layout data set at ``folder`` whose files are links to ``pairs`` (copies where links fail)."""
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for index, pair in enumerate(pairs):
        stem = f"{index:05d}_{pair.image.stem}"
        for source, sub in ((pair.image, "images"), (pair.masks[0], "masks")):
            target = folder / sub / f"{stem}{source.suffix.lower()}"
            try:
                os.symlink(source.resolve(), target)
            except OSError:
                shutil.copy2(source, target)
    return folder


def generated_split(root: Path) -> tuple[list[str], list[FramePair]]:
    """``(video names to validate on, their frames)`` of a generated data set: its last eighth of videos (at least one),
    named ``ROOT/VIDEO`` as ``training.train`` names them."""
    videos = discover(root, "auto", None).videos
    if len(videos) < 2:
        raise DatasetError(f"generated data set {root} has {len(videos)} video(s); adaptation needs at least 2 (train and validate)")
    held = videos[-max(1, len(videos) // 8) :]
    return [f"{root.resolve().name}/{v.name}" for v in held], [pair for v in held for pair in v.frames]


def generated_scenes(workers: int = 2) -> Path:
    """The generated scenes mixed into an adaptation, made once and cached (``SURGSEG_CACHE_DIR``)."""
    g = GENERATED
    folder = cache_root() / "adapt" / f"generated-s{g['seed']}-v{g['videos']}f{g['frames']}-{g['width']}x{g['height']}"
    if (folder / "summary.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".generated-", dir=folder.parent))
    try:
        write_dataset(staging, g["videos"], g["frames"], g["seed"], g["width"], g["height"], workers=workers, progress=False)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder
