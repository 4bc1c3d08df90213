"""The data of a training run: every ``--data`` root discovered, split by video, cached in RAM, and the
augmenting loader with its sampler (mixed per data set with ``--data-weights``)."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
from torch.utils.data import DataLoader, DistributedSampler

from training.augment import augment_preset
from training.datasets import DatasetIndex, Video, combine, discover, split_videos, subsample
from training.frame_cache import CachedFrameDataset, FrameCache, WeightedRootSampler, build_cache
from training.train_dist import Dist, log, progress


@contextlib.contextmanager
def opencv_threads(count: int | None) -> Iterator[None]:
    """Set OpenCV's thread count for the block (``None``: leave it), then restore it.

    Used with DataLoader workers: they are forked, inherit the setting, and then use one core each
    for augmentation instead of each spreading over all of them. (Calling ``cv2.setNumThreads``
    inside a forked worker can deadlock on the parent's thread pool, so it is set before the fork.)
    """
    if count is None:
        yield
        return
    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


@dataclass
class TrainingData:
    """The data sets, their split by video and the RAM caches of both splits."""

    indexes: list[DatasetIndex]
    train_videos: list[Video]
    val_videos: list[Video]
    train: FrameCache
    val: FrameCache

    def summary(self, args: argparse.Namespace) -> dict[str, Any]:
        """What the checkpoint records about the training data."""
        return {
            "root": str(self.indexes[0].root.resolve()) if len(self.indexes) == 1 else None,
            "roots": [{"root": str(index.root.resolve()), "layout": index.layout} for index in self.indexes],
            "layout": self.indexes[0].layout if len({index.layout for index in self.indexes}) == 1 else "mixed",
            "group_by": args.group_by if any(index.layout == "folders" for index in self.indexes) else None,
            "frame_step": args.frame_step,
            "data_weights": root_weights(args, self.train) if args.data_weights is not None else None,
            "augment": "none" if args.no_augment else args.augment,
            "train_videos": [v.name for v in self.train_videos],
            "val_videos": [v.name for v in self.val_videos],
            "train_frames": len(self.train),
            "val_frames": len(self.val),
        }


def load_data(args: argparse.Namespace, ctx: Dist, size: tuple[int, int]) -> TrainingData:
    """Discover every ``--data`` root, split by video (per root) and cache both splits at ``size``."""
    indexes = [discover(root, args.layout, args.group_by) for root in args.data]
    videos = subsample(combine(indexes), args.frame_step)
    train_videos, val_videos = split_videos(videos, args.val_videos, args.seed)
    log(
        ctx,
        f"data {', '.join(f'{index.root} ({index.layout})' for index in indexes)}: "
        f"train {[v.name for v in train_videos]}, val {[v.name for v in val_videos]}",
    )

    def cache_progress(desc: str) -> Callable[[Iterable[Any], int], Iterable[Any]]:
        return lambda it, n: progress(ctx, it, n, desc)

    t0 = time.monotonic()
    train_cache = build_cache(train_videos, size, args.workers, cache_progress("caching train"))
    val_cache = build_cache(val_videos, size, args.workers, cache_progress("caching val"))
    log(
        ctx,
        f"cached {len(train_cache)} train + {len(val_cache)} val frames at {size[0]}x{size[1]} "
        f"({(train_cache.nbytes + val_cache.nbytes) / 2**20:.0f} MiB) in {time.monotonic() - t0:.1f} s",
    )
    return TrainingData(indexes, train_videos, val_videos, train_cache, val_cache)


def root_weights(args: argparse.Namespace, cache: FrameCache) -> dict[str, float]:
    """``--data-weights`` keyed by data set name (the root folder's name, as in the video names); a root whose
    frames are all held out for validation has no training frames and so no weight."""
    names = [root.resolve().name for root in args.data]
    present = cache.root_indices()
    return {name: weight for name, weight in zip(names, args.data_weights, strict=True) if name in present}


def build_loader(args: argparse.Namespace, ctx: Dist, data: TrainingData) -> tuple[CachedFrameDataset, Any, DataLoader]:
    """Augmenting dataset, its sampler (weighted per data set with ``--data-weights``) and the loader."""
    augment_config = None if args.no_augment else augment_preset(args.augment)
    dataset = CachedFrameDataset(data.train, augment_config, args.seed)
    sampler: WeightedRootSampler | DistributedSampler[Any]
    if args.data_weights is not None or args.epoch_samples is not None:
        weights = (
            root_weights(args, data.train)
            if args.data_weights is not None
            else {root: float(len(frames)) for root, frames in data.train.root_indices().items()}
        )
        samples = args.epoch_samples or len(data.train)
        sampler = WeightedRootSampler(data.train, weights, samples, ctx.rank, ctx.world, args.seed)
        log(ctx, f"each epoch samples {samples} frames: " + ", ".join(f"{r} {n}" for r, n in sampler.counts.items()))
    else:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=args.seed)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.loader_workers,
        pin_memory=ctx.device.type == "cuda",
        drop_last=len(sampler) > args.batch_size,
    )
    return dataset, sampler, loader
