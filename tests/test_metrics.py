"""Pixel metrics on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.metrics import ConfusionCounts, confusion


def test_known_counts_and_scores() -> None:
    target = np.zeros((4, 5), bool)
    target[0, :4] = True  # 4 positives
    pred = np.zeros((4, 5), bool)
    pred[0, 2:5] = True  # 2 TP, 1 FP; 2 FN
    counts = confusion(pred, target)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (2, 1, 2, 15)
    m = counts.metrics()
    assert m["iou"] == pytest.approx(2 / 5)
    assert m["dice"] == pytest.approx(4 / 7)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["accuracy"] == pytest.approx(17 / 20)
    assert m["background_accuracy"] == pytest.approx(16 / 20)
    assert m["mean_frame_iou"] == pytest.approx(2 / 5)


def test_empty_masks_edge_cases() -> None:
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    both_empty = confusion(empty, empty).metrics()
    assert both_empty["iou"] == 1.0 and both_empty["dice"] == 1.0
    assert both_empty["precision"] == 1.0 and both_empty["recall"] == 1.0
    assert both_empty["accuracy"] == 1.0 and both_empty["background_accuracy"] == 1.0
    missed = confusion(empty, full).metrics()  # nothing predicted, everything to find
    assert missed["iou"] == 0.0 and missed["precision"] == 0.0 and missed["recall"] == 0.0
    assert missed["background_accuracy"] == 0.0
    false_alarm = confusion(full, empty).metrics()  # everything predicted, nothing to find
    assert false_alarm["iou"] == 0.0 and false_alarm["recall"] == 0.0 and false_alarm["precision"] == 0.0
    assert math.isnan(ConfusionCounts().metrics()["mean_frame_iou"])


def test_batch_accumulation_pooled_vs_per_frame() -> None:
    target = torch.zeros(2, 2, 2, dtype=torch.bool)
    target[0] = True  # frame 0: 4 positives; frame 1: empty
    pred = target.clone()
    pred[0, 0, 0] = False  # frame 0: 3 TP, 1 FN
    counts = confusion(pred, target)
    assert (counts.tp, counts.fn, counts.frames) == (3, 1, 2)
    m = counts.metrics()
    assert m["iou"] == pytest.approx(3 / 4)  # pooled over pixels
    assert m["mean_frame_iou"] == pytest.approx((3 / 4 + 1.0) / 2)  # empty frame predicted empty scores 1
    total = ConfusionCounts()
    total += confusion(pred[0], target[0])
    total += confusion(pred[1], target[1])
    assert ConfusionCounts.from_tensor(total.to_tensor()) == counts


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"prediction shape \(2, 3\) differs from target shape \(3, 2\)"):
        confusion(np.zeros((2, 3)), np.zeros((3, 2)))
