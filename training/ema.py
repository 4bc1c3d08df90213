"""Exponential moving average of a model's weights and buffers, for validation and the shipped checkpoint.

Training on small, varied batches makes the raw weights jump from step to step; validating and
shipping an average of the recent weights smooths that out (it does not remove swings that come
from the data, such as one hard validation video).
Batch-norm running statistics are averaged with the same decay, so the averaged model is
self-consistent. The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates,
so a short run is not dominated by its random initial weights.
"""

from __future__ import annotations

import copy
from typing import Any, Generic, TypeVar

import torch
from torch import nn

ModelT = TypeVar("ModelT", bound=nn.Module)


class WeightEMA(Generic[ModelT]):
    """A frozen copy of ``model`` whose floating-point tensors track ``model`` with decay ``decay``."""

    def __init__(self, model: ModelT, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.model: ModelT = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses (warm-up included)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights and buffers."""
        decay = self.current_decay()
        source = model.state_dict()
        for name, average in self.model.state_dict().items():
            value = source[name].detach()
            if average.dtype.is_floating_point:
                average.mul_(decay).add_(value.to(average.dtype), alpha=1.0 - decay)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the average."""
        return {"decay": self.decay, "updates": self.updates, "weights": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore an average saved by :meth:`state_dict`."""
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["weights"])
