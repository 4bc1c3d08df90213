"""The small shared helpers in ``models/``: natural sort order, percentiles, CPU core counts."""

from __future__ import annotations

import os

import pytest

from models.cpu import physical_cores, usable_cores, usable_cpus
from models.percentiles import percentile, percentiles
from models.sorting import natural_key


def test_natural_key_orders_digit_runs_as_numbers() -> None:
    names = ["frame10", "frame9", "frame100", "Video_010", "Video_02", "a", "1a"]
    assert sorted(names, key=natural_key) == ["1a", "Video_02", "Video_010", "a", "frame9", "frame10", "frame100"]


def test_percentiles() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5 and percentile(values, 100) == 4.0
    assert percentiles(values, (0, 50)) == {"p0": 1.0, "p50": 2.5}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_core_counts_follow_the_affinity_mask() -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity masks on this platform")
    assert usable_cpus() == set(os.sched_getaffinity(0)) and usable_cores() == len(usable_cpus())
    assert 1 <= physical_cores() <= usable_cores()
