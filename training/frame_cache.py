"""The RAM cache of a data set's frames and what training draws from it.

:func:`build_cache` decodes, validates and resizes every frame once (a thread pool) into a
:class:`FrameCache`; :class:`CachedFrameDataset` serves (augmented) frames from it to a DataLoader, and
:class:`WeightedRootSampler` draws each epoch's frames with a set share per data set (``--data-weights``).
Discovery, validation and splitting of the data sets themselves are in :mod:`training.datasets`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.utils.data

from training.augment import AugmentConfig, augment
from training.datasets import DatasetError, Video, load_pair, resize_pair


@dataclass
class FrameCache:
    """Frames decoded and resized once, held in RAM: images ``N×H×W×3`` uint8 BGR, masks ``N×H×W`` 0/1."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)  # the data set of each frame

    def root_indices(self) -> dict[str, np.ndarray]:
        """Frame indices of each data set, in first-seen order."""
        order = list(dict.fromkeys(self.roots))
        labels = np.array(self.roots)
        return {root: np.flatnonzero(labels == root) for root in order}

    def __len__(self) -> int:
        return len(self.images)

    @property
    def nbytes(self) -> int:
        """Memory used by the arrays."""
        return int(self.images.nbytes + self.masks.nbytes)


def build_cache(
    videos: Sequence[Video],
    size: tuple[int, int],
    workers: int = 2,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> FrameCache:
    """Decode, validate and resize every frame of ``videos`` to ``size`` (H, W) with a thread pool."""
    pairs = [pair for video in videos for pair in video.frames]
    roots = [video.root for video in videos for _ in video.frames]
    if not pairs:
        raise DatasetError("cannot cache an empty list of frames")
    height, width = size
    images = np.empty((len(pairs), height, width, 3), np.uint8)
    masks = np.empty((len(pairs), height, width), np.uint8)

    def work(index: int) -> int:
        image, mask = resize_pair(*load_pair(pairs[index]), size)
        images[index] = image
        masks[index] = mask
        return index

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results: Iterable[int] = pool.map(work, range(len(pairs)))
        if progress is not None:
            results = progress(results, len(pairs))
        for _ in results:
            pass
    return FrameCache(images, masks, [p.name for p in pairs], [p.video for p in pairs], roots)


class CachedFrameDataset(torch.utils.data.Dataset):
    """Torch dataset over a :class:`FrameCache`: ``(image uint8 H×W×3 BGR, mask uint8 H×W 0/1)`` tensors.

    With ``augment_config`` set, each item is augmented with a generator seeded by
    ``(seed, epoch, index)``: reproducible whatever the number of loader workers. Call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(self, cache: FrameCache, augment_config: AugmentConfig | None = None, seed: int = 0) -> None:
        self.cache = cache
        self.augment_config = augment_config
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.cache.images[index], self.cache.masks[index]
        if self.augment_config is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = augment(image, mask, rng, self.augment_config)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(mask))


class WeightedRootSampler(torch.utils.data.Sampler[int]):
    """Per-epoch sample of a :class:`FrameCache`'s frames where each data set gets a set share.

    Data set ``r`` contributes ``round(num_samples * w_r / sum(w))`` frames per epoch, drawn as
    repeated random permutations of its frames (so every frame is seen before any is repeated).
    The draw depends only on ``(seed, epoch)``; with several processes each rank takes every
    ``world``-th index of the same draw, all ranks the same count.
    """

    def __init__(
        self,
        cache: FrameCache,
        weights: dict[str, float],
        num_samples: int,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
    ) -> None:
        groups = cache.root_indices()
        unknown = sorted(set(weights) - set(groups))
        missing = sorted(set(groups) - set(weights))
        if unknown or missing:
            raise DatasetError(f"data weights name {sorted(weights)}, the training frames come from {list(groups)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise DatasetError(f"data weights must be >= 0 with a positive sum, got {weights}")
        if num_samples < 1:
            raise DatasetError(f"samples per epoch must be >= 1, got {num_samples}")
        total = sum(weights.values())
        self.groups = groups
        self.counts = {root: int(round(num_samples * weights[root] / total)) for root in groups}
        self.rank, self.world, self.seed, self.epoch = rank, world, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the draw of ``epoch``."""
        self.epoch = epoch

    def _draw(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        parts = []
        for root, frames in self.groups.items():
            need = self.counts[root]
            repeats = -(-need // len(frames)) if need else 0
            parts.append(np.concatenate([rng.permutation(frames) for _ in range(repeats)])[:need] if need else frames[:0])
        drawn = np.concatenate(parts)
        return drawn[rng.permutation(len(drawn))]

    def __len__(self) -> int:
        return sum(self.counts.values()) // self.world

    def __iter__(self) -> Iterator[int]:
        drawn = self._draw()
        return iter(int(i) for i in drawn[self.rank :: self.world][: len(self)])
