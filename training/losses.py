"""The training loss: BCE-with-logits + soft Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice per image, averaged over the batch (float32)."""
    prob = torch.sigmoid(logits.float())
    inter = (prob * target).sum((1, 2, 3))
    denom = prob.sum((1, 2, 3)) + target.sum((1, 2, 3))
    return 1.0 - ((2.0 * inter + eps) / (denom + eps)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits + soft Dice; ``target`` float 0/1 ``N×1×H×W``."""
    return F.binary_cross_entropy_with_logits(logits.float(), target) + soft_dice_loss(logits, target)
