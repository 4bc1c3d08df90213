"""Percentiles of timing samples (linear interpolation, as ``numpy.percentile``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """Percentile ``q`` in [0, 100] of non-empty ``values``."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("percentile of no values")
    return float(np.percentile(array, q))


def percentiles(values: Sequence[float] | np.ndarray, qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    """``{"p50": ..., ...}`` of ``values`` (each ``None`` when there are none)."""
    if len(values) == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": percentile(values, q) for q in qs}
