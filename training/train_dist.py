"""The distributed context of a training run (``torchrun``: one process per rank; single-process otherwise):
rank and device, all-reduce helpers, and logging / progress bars on rank 0 only."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm


class Dist:
    """Rank/world information; single-process when not launched by torchrun."""

    def __init__(self, device_arg: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        use_cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if device_arg not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device {device_arg!r}: expected auto, cpu or cuda")
        if use_cuda and not torch.cuda.is_available():
            raise ValueError("--device cuda was requested but CUDA is not available")
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.enabled:
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """True on the process that logs and writes files."""
        return self.rank == 0

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) in place when distributed; returns the tensor."""
        if self.enabled:
            moved = tensor.to(self.device)
            dist.all_reduce(moved)
            tensor.copy_(moved.cpu() if tensor.device.type == "cpu" else moved)
        return tensor

    def max_(self, value: float) -> float:
        """The largest ``value`` over ranks (the value itself single-process)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def barrier(self) -> None:
        """Synchronise ranks (no-op single-process)."""
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Tear down the process group."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def sync_buffers(model: nn.Module, ctx: Dist) -> None:
    """Copy rank 0's buffers (batch-norm statistics) to every rank."""
    if ctx.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def log(ctx: Dist, message: str) -> None:
    """Print ``message`` on the process that logs (rank 0)."""
    if ctx.main:
        print(message, flush=True)


def progress(ctx: Dist, iterable: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
    """A progress bar over ``iterable`` on rank 0 when stderr is a terminal."""
    return tqdm(iterable, total=total, desc=desc, disable=not (ctx.main and sys.stderr.isatty()), leave=False)
