"""``python -m training.tradeoff``: architecture, latency and accuracy rows for trained checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from models.checkpoint import ModelMeta, build_segmenter, save_checkpoint
from models.unet import UNetConfig
from training.tradeoff import main


def _constant_checkpoint(path: Path, width: int, logit: float) -> Path:
    meta = ModelMeta(UNetConfig(base_width=width, depth=2), input_height=16, input_width=20)
    model = build_segmenter(meta)
    with torch.no_grad():
        model.unet.head.weight.zero_()
        model.unet.head.bias.fill_(logit)
    return save_checkpoint(path, model, meta)


def test_tradeoff_reports_width_latency_and_iou(make_dvrk, tmp_path: Path, capsys) -> None:
    data = make_dvrk(2, 2, height=24, width=32)
    everything = _constant_checkpoint(tmp_path / "w4.pt", 4, 8.0)  # predicts instrument everywhere
    nothing = _constant_checkpoint(tmp_path / "w2.pt", 2, -8.0)  # predicts background everywhere
    out = tmp_path / "tradeoff.json"
    argv = [str(everything), str(nothing), "--data", str(data), "--iterations", "3", "--json", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert table.count("\n| 4 | 2 |") == 1 and table.count("\n| 2 | 2 |") == 1
    payload = json.loads(out.read_text())
    rows = {row["base_width"]: row for row in payload["rows"]}
    assert rows[2]["iou"] == 0.0  # no instrument predicted
    masks = [cv2.imread(str(m), cv2.IMREAD_GRAYSCALE) for m in sorted(data.glob("Video_*/ground_truth/*.png"))]
    foreground = sum(int((m > 0).sum()) for m in masks) / sum(m.size for m in masks)
    assert rows[4]["iou"] == pytest.approx(foreground, abs=1e-4)  # all-instrument IoU = foreground fraction
    assert rows[4]["params_m"] > rows[2]["params_m"]
    assert all(row["median_ms"] > 0 and row["input_size"] == "16x20" for row in rows.values())
    assert payload["command"].startswith("python -m training.tradeoff ") and "onnxruntime" in rows[4]["backend"]
