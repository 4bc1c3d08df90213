"""Training curves and prediction grids, written atomically as PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.atomic_io import atomic_write_bytes, atomic_write_with

# Overlay colours (BGR): true positive green, false positive red, false negative blue.
TP_COLOUR = (0, 200, 0)
FP_COLOUR = (0, 0, 255)
FN_COLOUR = (255, 128, 0)
GT_COLOUR = (0, 220, 255)


def write_curves(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> Path:
    """Plot train/val loss and validation IoU/Dice per epoch into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train loss")
    ax_loss.plot(epochs, [r["val_loss"] for r in rows], "o-", label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("BCE + Dice loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_score.plot(epochs, [r["val_iou"] for r in rows], "o-", label="val IoU")
    ax_score.plot(epochs, [r["val_dice"] for r in rows], "o-", label="val Dice")
    ax_score.set_xlabel("epoch")
    ax_score.set_ylim(0, 1)
    ax_score.legend()
    ax_score.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def overlay(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float = 0.5) -> np.ndarray:
    """Blend ``colour`` into ``image`` where ``mask`` is true."""
    out = image.copy()
    sel = mask.astype(bool)
    out[sel] = (out[sel] * (1 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
    return out


def error_overlay(image: np.ndarray, pred: np.ndarray, target: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Colour-code prediction vs ground truth: TP green, FP red, FN blue."""
    pred, target = pred.astype(bool), target.astype(bool)
    out = overlay(image, pred & target, TP_COLOUR, alpha)
    out = overlay(out, pred & ~target, FP_COLOUR, alpha)
    return overlay(out, ~pred & target, FN_COLOUR, alpha)


def label_tile(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` with ``text`` written in its top-left corner (in place; returned for chaining)."""
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def grid_row(image: np.ndarray, target: np.ndarray, pred: np.ndarray, title: str, tile_width: int = 320) -> np.ndarray:
    """One row ``image | ground truth overlay | prediction TP/FP/FN overlay``, each ``tile_width`` wide."""
    height = max(1, round(image.shape[0] * tile_width / image.shape[1]))
    small = cv2.resize(image, (tile_width, height), interpolation=cv2.INTER_AREA)
    t = cv2.resize(target.astype(np.uint8), (tile_width, height), interpolation=cv2.INTER_NEAREST)
    p = cv2.resize(pred.astype(np.uint8), (tile_width, height), interpolation=cv2.INTER_NEAREST)
    tiles = [
        label_tile(small.copy(), title),
        label_tile(overlay(small, t, GT_COLOUR), "ground truth"),
        label_tile(error_overlay(small, p, t), "pred: TP green FP red FN blue"),
    ]
    return np.hstack(tiles)


def write_grid(path: str | os.PathLike[str], rows: Sequence[np.ndarray]) -> Path:
    """Stack rows (padded to a common width) into one PNG at ``path``."""
    if not rows:
        raise ValueError(f"no rows to write into {path}")
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in rows]
    ok, encoded = cv2.imencode(".png", np.vstack(padded))
    if not ok:
        raise RuntimeError(f"could not encode the prediction grid for {path}")
    return atomic_write_bytes(path, encoded.tobytes())
