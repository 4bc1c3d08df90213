"""Discovery, validation and splitting of segmentation datasets (their RAM cache: :mod:`training.frame_cache`).

Supported layouts (``detect_layout`` picks one automatically):

``dvrk``  ("Synthetic MICCAI" dVRK layout)
    ``root/Video_NN/images/NNN.png`` + ``root/Video_NN/ground_truth/NNN.png``, plus optional
    ``root/others/Video_NN``. Videos are ordered by the NUMBER after ``Video_`` (so ``Video_09``
    comes before ``Video_010``), frames by the number in the file stem.
``folders``
    ``root/images/*`` + ``root/masks/*`` paired by file stem (the mask may have another
    extension). Files are grouped into "videos" (sources) by a regular expression on the stem:
    the first capture group (or the group named ``source``) is the video name; stems that do not
    match go into one video named after the root folder. ``group_by=None`` puts every file in
    one video. :data:`DEFAULT_GROUP_BY` drops the last ``_``-separated token when it ends in
    digits: ``ev17_ds1_frame000`` -> ``ev17_ds1``, ``lap_image43`` -> ``lap``.
``endovis17``
    ``[root/]instrument_dataset_N/left_frames/frameXXX.png`` +
    ``instrument_dataset_N/ground_truth/<part>_labels/frameXXX.png``; the binary mask is the
    union (> 0) of all part label maps.

Masks are returned as ``uint8`` arrays of 0/1. Binary masks on disk may use {0, 255} or {0, 1}
(a single value is accepted too); anything else is an error that lists the values found.
Images are ``uint8`` BGR, as OpenCV decodes them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.sorting import natural_key

LAYOUTS = ("auto", "dvrk", "folders", "endovis17")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_GROUP_BY = r"(?P<source>.+)_[A-Za-z]*\d+"
_VIDEO_DIR = re.compile(r"^Video_(\d+)$")
_ENDOVIS_DIR = re.compile(r"^instrument_dataset_(\d+)$")


class DatasetError(ValueError):
    """The dataset on disk is missing, malformed or inconsistent (the message names the file)."""


@dataclass(frozen=True)
class FramePair:
    """One image and the mask file(s) that label it."""

    image: Path
    masks: tuple[Path, ...]
    video: str
    union_labels: bool = False  # True: masks are label maps, binary = union of (> 0)

    @property
    def name(self) -> str:
        """Short ``video/stem`` identifier for reports."""
        return f"{self.video}/{self.image.stem}"


@dataclass
class Video:
    """An ordered sequence of frames from one video (or one source)."""

    name: str
    frames: list[FramePair]
    root: str = ""  # the data set (root folder name) the video belongs to


@dataclass
class DatasetIndex:
    """All videos found under ``root`` with the layout that was used."""

    root: Path
    layout: str
    videos: list[Video]

    @property
    def num_frames(self) -> int:
        """Total number of frames over all videos."""
        return sum(len(v.frames) for v in self.videos)

    def video_names(self) -> list[str]:
        """Names of the videos, in order."""
        return [v.name for v in self.videos]


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
        key=lambda p: natural_key(p.stem),
    )


def _by_stem(files: Iterable[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in files:
        if path.stem in out:
            raise DatasetError(f"two files share the stem {path.stem!r} in {folder}: {out[path.stem].name} and {path.name}")
        out[path.stem] = path
    return out


def _pair_folder(images_dir: Path, masks_dir: Path, video: str) -> list[FramePair]:
    """Pair ``images_dir`` and ``masks_dir`` by file stem; an unmatched file on either side is an error."""
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DatasetError(f"expected a folder at {folder}, but it does not exist")
    images = _by_stem(_image_files(images_dir), images_dir)
    masks = _by_stem(_image_files(masks_dir), masks_dir)
    missing_masks = [images[s] for s in images if s not in masks]
    if missing_masks:
        raise DatasetError(
            f"image {missing_masks[0]} has no mask in {masks_dir} (expected a file with stem {missing_masks[0].stem!r})"
            + (f"; {len(missing_masks) - 1} more images lack masks" if len(missing_masks) > 1 else "")
        )
    missing_images = [masks[s] for s in masks if s not in images]
    if missing_images:
        raise DatasetError(
            f"mask {missing_images[0]} has no image in {images_dir} "
            f"(expected a file with stem {missing_images[0].stem!r})"
            + (f"; {len(missing_images) - 1} more masks lack images" if len(missing_images) > 1 else "")
        )
    return [FramePair(images[s], (masks[s],), video) for s in sorted(images, key=natural_key)]


def detect_layout(root: Path) -> str:
    """Return ``dvrk``, ``folders`` or ``endovis17`` for the dataset at ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a folder")
    names = [p.name for p in root.iterdir() if p.is_dir()]
    if any(_VIDEO_DIR.match(n) for n in names) or (root / "others").is_dir():
        return "dvrk"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "folders"
    if any(_ENDOVIS_DIR.match(n) for n in names) or (root / "left_frames").is_dir():
        return "endovis17"
    raise DatasetError(
        f"cannot detect the dataset layout of {root}: expected Video_NN/ folders (dvrk), "
        "images/ + masks/ (folders) or instrument_dataset_N/ (endovis17)"
    )


def _discover_dvrk(root: Path) -> list[Video]:
    found: dict[str, tuple[int, Path]] = {}
    for parent in (root, root / "others"):
        if not parent.is_dir():
            continue
        for sub in parent.iterdir():
            match = _VIDEO_DIR.match(sub.name)
            if not (sub.is_dir() and match):
                continue
            if sub.name in found:
                raise DatasetError(f"video {sub.name} appears twice: {found[sub.name][1]} and {sub}")
            found[sub.name] = (int(match.group(1)), sub)
    videos = []
    for name, (_, folder) in sorted(found.items(), key=lambda item: (item[1][0], item[0])):
        videos.append(Video(name, _pair_folder(folder / "images", folder / "ground_truth", name)))
    return videos


def _compile_group(group_by: str | None) -> re.Pattern[str] | None:
    if not group_by:
        return None
    try:
        return re.compile(group_by)
    except re.error as error:
        raise DatasetError(f"--group-by {group_by!r} is not a valid regular expression: {error}") from None


def group_name(stem: str, pattern: re.Pattern[str] | None, fallback: str) -> str:
    """Video/source name of a file stem under a ``group_by`` pattern (see module docstring)."""
    if pattern is None:
        return fallback
    match = pattern.fullmatch(stem)
    if not match:
        return fallback
    if "source" in match.groupdict():
        return match.group("source")
    return match.group(1) if match.groups() else match.group(0)


def _discover_folders(root: Path, group_by: str | None) -> list[Video]:
    pattern = _compile_group(group_by)
    pairs = _pair_folder(root / "images", root / "masks", root.name)
    groups: dict[str, list[FramePair]] = {}
    for pair in pairs:
        name = group_name(pair.image.stem, pattern, root.name)
        groups.setdefault(name, []).append(FramePair(pair.image, pair.masks, name))
    return [Video(name, groups[name]) for name in sorted(groups, key=natural_key)]


def _discover_endovis(root: Path) -> list[Video]:
    if (root / "left_frames").is_dir():
        dataset_dirs = [root]
    else:
        dataset_dirs = sorted((p for p in root.iterdir() if p.is_dir() and _ENDOVIS_DIR.match(p.name)), key=lambda p: natural_key(p.name))
    videos = []
    for folder in dataset_dirs:
        frames_dir, gt_dir = folder / "left_frames", folder / "ground_truth"
        for needed in (frames_dir, gt_dir):
            if not needed.is_dir():
                raise DatasetError(f"expected a folder at {needed} (EndoVis 2017 layout), but it does not exist")
        label_dirs = sorted(p for p in gt_dir.iterdir() if p.is_dir() and p.name.endswith("_labels"))
        if not label_dirs:
            raise DatasetError(f"{gt_dir} has no <part>_labels folders (EndoVis 2017 layout)")
        label_maps = [_by_stem(_image_files(d), d) for d in label_dirs]
        frames = []
        for image in _image_files(frames_dir):
            masks = []
            for label_dir, by_stem in zip(label_dirs, label_maps, strict=True):
                if image.stem not in by_stem:
                    raise DatasetError(f"image {image} has no label map in {label_dir} (expected stem {image.stem!r})")
                masks.append(by_stem[image.stem])
            frames.append(FramePair(image, tuple(masks), folder.name, union_labels=True))
        videos.append(Video(folder.name, frames))
    return videos


def discover(root: str | os.PathLike[str], layout: str = "auto", group_by: str | None = DEFAULT_GROUP_BY) -> DatasetIndex:
    """Find and pair every frame under ``root``; check that the first pair is readable.

    ``group_by`` only applies to the ``folders`` layout. Raises :class:`DatasetError` with the
    offending path for missing folders, unpaired files, empty datasets or unreadable files.
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a folder")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "dvrk":
        videos = _discover_dvrk(root)
    elif layout == "folders":
        videos = _discover_folders(root, group_by)
    else:
        videos = _discover_endovis(root)
    videos = [v for v in videos if v.frames]
    if not videos:
        raise DatasetError(f"no image/mask pairs found under {root} (layout {layout})")
    load_pair(videos[0].frames[0])  # fail early on an unreadable or malformed first pair
    return DatasetIndex(root, layout, videos)


def read_image(path: Path) -> np.ndarray:
    """Decode an image file as ``uint8`` BGR ``H×W×3``."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"could not read image {path} (missing, unreadable or not an image)")
    return image


def read_mask_channel(path: Path) -> np.ndarray:
    """A mask file's single channel at its own bit depth (a grey image saved as colour is accepted when its
    channels are equal); :class:`DatasetError` naming the file otherwise."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(f"could not read mask {path} (missing, unreadable or not an image)")
    if mask.ndim == 3:
        channels = mask[..., :3]
        if not (np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(channels[..., 0], channels[..., 2])):
            raise DatasetError(f"mask {path} is a colour image with differing channels; expected a single-channel mask")
        mask = channels[..., 0]
    return mask


def _read_gray(path: Path) -> np.ndarray:
    mask = read_mask_channel(path)
    if mask.dtype != np.uint8:
        raise DatasetError(f"mask {path} has dtype {mask.dtype}; expected 8-bit values")
    return mask


def read_mask(path: Path) -> np.ndarray:
    """Read a binary mask as ``uint8`` 0/1; values must be a subset of {0, 255} or of {0, 1}."""
    mask = _read_gray(path)
    values = np.unique(mask)
    found = set(values.tolist())
    if found <= {0, 255}:
        return (mask > 0).astype(np.uint8)
    if found <= {0, 1}:
        return mask.astype(np.uint8, copy=False)
    shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    raise DatasetError(f"mask {path} is not binary: found values {{{shown}}} ({len(values)} distinct); expected {{0, 255}} or {{0, 1}}")


def read_label_union(paths: Sequence[Path]) -> np.ndarray:
    """Union (> 0) of several label maps, as ``uint8`` 0/1 (EndoVis 2017 part labels)."""
    union: np.ndarray | None = None
    for path in paths:
        labels = _read_gray(path) > 0
        if union is not None and labels.shape != union.shape:
            raise DatasetError(f"label map {path} is {labels.shape[1]}x{labels.shape[0]}, others are {union.shape[1]}x{union.shape[0]}")
        union = labels if union is None else union | labels
    assert union is not None
    return union.astype(np.uint8)


def load_pair(pair: FramePair) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one frame: ``(image uint8 BGR H×W×3, mask uint8 0/1 H×W)`` at file resolution."""
    image = read_image(pair.image)
    mask = read_label_union(pair.masks) if pair.union_labels else read_mask(pair.masks[0])
    if mask.shape != image.shape[:2]:
        raise DatasetError(
            f"mask {pair.masks[0]} is {mask.shape[1]}x{mask.shape[0]} (WxH) but image {pair.image} is "
            f"{image.shape[1]}x{image.shape[0]}; expected the same size"
        )
    return image, mask


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size`` = (height, width): area/linear interpolation for the image, NEAREST for the mask."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image, mask
    shrinking = height < image.shape[0] and width < image.shape[1]
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, mask


def combine(indexes: Sequence[DatasetIndex]) -> list[Video]:
    """The videos of one or more data sets. With several, each video is named ``ROOT/VIDEO`` after its
    data set's folder name (e.g. ``synthetic/Video_02``), so names stay unique; the folder names must differ."""
    names = [index.root.resolve().name for index in indexes]
    if len(indexes) == 1:
        return [Video(video.name, video.frames, names[0]) for video in indexes[0].videos]
    shared = sorted({name for name in names if names.count(name) > 1})
    if shared:
        roots = [str(index.root) for index in indexes]
        raise DatasetError(f"data roots {roots} share the folder name(s) {shared}; each root needs its own name")
    return [Video(f"{name}/{video.name}", video.frames, name) for name, index in zip(names, indexes, strict=True) for video in index.videos]


def subsample(videos: Sequence[Video], frame_step: int) -> list[Video]:
    """Keep every ``frame_step``-th frame of each video (the first frame is always kept)."""
    if frame_step < 1:
        raise DatasetError(f"frame step must be >= 1, got {frame_step}")
    return [Video(v.name, v.frames[::frame_step], v.root) for v in videos]


def split_videos(videos: Sequence[Video], val_videos: int | Sequence[str], seed: int = 0) -> tuple[list[Video], list[Video]]:
    """Split by VIDEO into ``(train, val)``.

    ``val_videos`` is a count or explicit names. A count holds out that many videos picked by a
    ``seed``-ed shuffle from EACH data set (videos of several roots, see :func:`combine`), so every
    data set is validated. Both splits must be non-empty; frames of one video never end up in both.
    """
    names = [v.name for v in videos]
    roots = sorted({v.root for v in videos})
    if isinstance(val_videos, int) and len(roots) > 1:
        splits = [split_videos([v for v in videos if v.root == root], val_videos, seed) for root in roots]
        held_out = {v.name for _, val in splits for v in val}
        return [v for v in videos if v.name not in held_out], [v for v in videos if v.name in held_out]
    if isinstance(val_videos, int):
        if not 0 < val_videos < len(videos):
            raise DatasetError(
                f"cannot hold out {val_videos} validation videos from {len(videos)} videos {names}: "
                "both the training and the validation split need at least one video"
            )
        order = np.random.default_rng(seed).permutation(len(videos))
        chosen = {names[i] for i in order[-val_videos:]}
    else:
        chosen = set(val_videos)
        unknown = sorted(chosen - set(names))
        if unknown:
            raise DatasetError(f"validation videos {unknown} not found; available videos: {names}")
        if not chosen or len(chosen) == len(names):
            raise DatasetError(
                f"validation videos {sorted(chosen)} leave an empty split among {names}; "
                "both the training and the validation split need at least one video"
            )
    train = [v for v in videos if v.name not in chosen]
    val = [v for v in videos if v.name in chosen]
    for split_name, split in (("training", train), ("validation", val)):
        if sum(len(v.frames) for v in split) == 0:
            raise DatasetError(f"the {split_name} split ({[v.name for v in split]}) has no frames")
    return train, val
