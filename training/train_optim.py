"""The optimisation of a training run: AdamW, the warm-up + cosine learning-rate schedule (optionally following the
time budget), the AMP gradient scaler and the weight average, with their state for ``--resume``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from training.ema import WeightEMA


def warmup_cosine(
    total_steps: int, warmup_steps: int, floor: float = 0.01, time_fraction: Callable[[], float] | None = None
) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``floor``.

    With ``time_fraction`` (the share of a time budget used, 0..1) the decay progresses by the
    larger of the step fraction and the time fraction, so it reaches ``floor`` when either runs out.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        if time_fraction is not None:
            progress = max(progress, time_fraction())
        progress = min(1.0, progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@dataclass
class Optimisation:
    """Optimiser, LR schedule, AMP scaler and weight average of one run."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: WeightEMA | None
    budget_used: list[float]  # share of --max-train-minutes used, synchronised over ranks at every step

    def state_dict(self) -> dict[str, Any]:
        """Everything ``--resume`` needs to continue the optimisation."""
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])


def build_optimisation(args: argparse.Namespace, model: nn.Module, steps_per_epoch: int, scale_gradients: bool) -> Optimisation:
    """AdamW with warm-up + cosine decay (following the time budget with ``--anneal-to-budget``)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total_steps = args.epochs * steps_per_epoch
    # default warm-up: 3 % of all steps, at most one epoch (with --anneal-to-budget --epochs is set high on purpose)
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, min(int(0.03 * total_steps), steps_per_epoch))
    budget_used = [0.0]
    time_fraction = (lambda: budget_used[0]) if args.anneal_to_budget else None
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup, time_fraction=time_fraction))
    ema = WeightEMA(model, args.ema) if args.ema > 0 else None
    return Optimisation(optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=scale_gradients), ema, budget_used)
