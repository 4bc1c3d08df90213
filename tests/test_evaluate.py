"""``training.evaluate`` on models whose outputs are known exactly."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch
from conftest import draw_frame

from models.checkpoint import ModelMeta, build_segmenter, load_checkpoint, save_checkpoint, weights_digest
from models.unet import UNetConfig
from training.evaluate import evaluate_checkpoint, main


def constant_checkpoint(path: Path, logit: float) -> Path:
    """A checkpoint whose model outputs ``logit`` everywhere (head weights zero, bias = logit)."""
    meta = ModelMeta(UNetConfig(base_width=2, depth=1), input_height=16, input_width=20)
    model = build_segmenter(meta)
    with torch.no_grad():
        model.unet.head.weight.zero_()
        model.unet.head.bias.fill_(logit)
    return save_checkpoint(path, model, meta)


def _foreground(root: Path, video: str) -> tuple[int, int]:
    masks = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((root / video / "ground_truth").glob("*.png"))]
    return sum(int((m > 0).sum()) for m in masks), sum(m.size for m in masks)


def test_all_instrument_model_scores_are_exact(make_dvrk, tmp_path: Path) -> None:
    data = make_dvrk(2, 3, height=24, width=32)
    checkpoint = constant_checkpoint(tmp_path / "ones.pt", 8.0)
    report = evaluate_checkpoint(checkpoint, data, tmp_path / "eval", grid_frames=2, command="test")
    for video in ("Video_01", "Video_02"):
        fg, total = _foreground(data, video)
        m = report["videos"][video]
        assert m["pixels"] == total == 3 * 24 * 32  # scored at the original mask resolution, not 16x20
        assert m["frames"] == 3
        assert m["iou"] == pytest.approx(fg / total)
        assert m["precision"] == pytest.approx(fg / total) and m["recall"] == 1.0
        assert m["accuracy"] == pytest.approx(fg / total)
        assert m["background_accuracy"] == pytest.approx(1 - fg / total)
    fg_all = sum(_foreground(data, v)[0] for v in ("Video_01", "Video_02"))
    assert report["overall"]["iou"] == pytest.approx(fg_all / (6 * 24 * 32))
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["weights_digest"] == report["weights_digest"] and saved["input_size"] == [16, 20]
    assert saved["checkpoint"] == str(checkpoint.resolve()) and saved["data_root"] == str(data.resolve())
    assert "original resolution" in saved["scoring"] and saved["command"] == "test"
    grid = cv2.imread(str(tmp_path / "eval" / "grid.png"))
    assert grid is not None and grid.shape[1] == 3 * 320  # image | ground truth | prediction
    assert grid.shape[0] >= 4 * 240  # 2 frames x 2 videos


def test_all_background_model_matches_baseline(make_dvrk, tmp_path: Path) -> None:
    data = make_dvrk(1, 2)
    report = evaluate_checkpoint(constant_checkpoint(tmp_path / "zeros.pt", -8.0), data)
    m = report["overall"]
    assert m["iou"] == 0.0 and m["recall"] == 0.0
    assert m["accuracy"] == pytest.approx(m["background_accuracy"]) and m["accuracy"] < 1.0


def test_cli_on_folder_pairs_reports_per_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "realdev"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    sizes = {
        "ev17_ds1_frame000": (30, 40),
        "ev17_ds1_frame001": (30, 40),
        "lap_image43": (27, 48),
        "lap_image7": (27, 48),
    }
    for seed, (stem, (h, w)) in enumerate(sizes.items()):
        image, mask = draw_frame(seed, h, w)
        cv2.imwrite(str(root / "images" / f"{stem}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), mask)
    checkpoint = constant_checkpoint(tmp_path / "ones.pt", 8.0)
    out = tmp_path / "eval"
    assert main(["--checkpoint", str(checkpoint), "--data", str(root), "--out", str(out), "--device", "cpu"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["videos"]) == ["ev17_ds1", "lap"]
    assert report["videos"]["lap"]["pixels"] == 2 * 27 * 48
    assert report["layout"] == "folders" and report["command"].startswith("python -m training.evaluate --checkpoint")
    assert (out / "grid.png").stat().st_size > 0
    table = capsys.readouterr().out
    assert "ev17_ds1" in table and "OVERALL" in table and "all-bg acc" in table
    model_digest = report["weights_digest"]
    assert len(model_digest) == 16 and model_digest == weights_digest(load_checkpoint(checkpoint)[0])


def test_missing_checkpoint_is_a_clear_error(make_dvrk, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dvrk(1, 1)
    assert main(["--checkpoint", str(tmp_path / "nope.pt"), "--data", str(data), "--out", str(tmp_path / "e")]) == 2
    assert "nope.pt does not exist" in capsys.readouterr().err


def test_failure_gallery_keeps_the_worst_frames_worst_first(make_dvrk, tmp_path: Path) -> None:
    """With an all-instrument model a frame's IoU is its instrument coverage: the gallery must hold the
    least-covered frames of each video, lowest IoU first."""
    data = make_dvrk(2, 5, height=24, width=32)
    report = evaluate_checkpoint(constant_checkpoint(tmp_path / "ones.pt", 8.0), data, tmp_path / "eval", grid_frames=2)
    for video in ("Video_01", "Video_02"):
        masks = sorted((data / video / "ground_truth").glob("*.png"))
        coverage = sorted(
            (float((cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0).mean()), f"{video}/{p.stem}") for p in masks
        )
        worst = report["worst_frames"][video]
        assert [w["frame"] for w in worst] == [name for _, name in coverage[:2]]
        assert [w["iou"] for w in worst] == pytest.approx([c for c, _ in coverage[:2]])
    grid = cv2.imread(str(tmp_path / "eval" / "grid.png"))
    assert grid is not None and grid.shape[0] >= 4 * 240
