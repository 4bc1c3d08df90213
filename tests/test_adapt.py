"""``python -m training.adapt``: refusals, the hold-back split, and (slow) a whole adaptation on small made-up data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.checkpoint import ModelMeta, build_segmenter, load_checkpoint, save_checkpoint
from models.unet import preset
from tests.conftest import draw_frame
from training.adapt import main as adapt_main
from training.adapt_data import check_user_frames, split_user_frames
from training.adapt_report import THRESHOLDS, counts_at_thresholds
from training.datasets import DEFAULT_GROUP_BY
from training.metrics import confusion


def folders(
    root: Path, stems: list[str], height: int = 48, width: int = 64, mask_of: Callable[[np.ndarray], np.ndarray] | None = None
) -> Path:
    """A folders-layout data set of bar pictures (``images/STEM.png``, ``masks/STEM.png``)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for seed, stem in enumerate(stems):
        image, mask = draw_frame(seed + 1, height, width)
        cv2.imwrite(str(root / "images" / f"{stem}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), mask if mask_of is None else mask_of(mask))
    return root


def run_adapt(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = adapt_main(argv)
    return code, capsys.readouterr().err


def test_refuses_fewer_than_five_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = folders(tmp_path / "mine", [f"clip_f{i}" for i in range(4)])
    code, err = run_adapt(["--data", str(data), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "4 labelled frames found; adaptation needs at least 5" in err
    assert not (tmp_path / "out").exists(), "nothing is written for unusable input"


def test_refuses_masks_that_are_not_binary_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = folders(tmp_path / "mine", [f"clip_f{i}" for i in range(6)], mask_of=lambda m: (m > 0).astype(np.uint8) * 3 + 1)
    code, err = run_adapt(["--data", str(data), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "is not binary" in err and "clip_f0.png" in err


def test_refuses_a_set_without_any_instrument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = folders(tmp_path / "mine", [f"clip_f{i}" for i in range(6)], mask_of=np.zeros_like)
    code, err = run_adapt(["--data", str(data), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "none of the 6 masks marks an instrument" in err


def test_holds_back_whole_videos_where_names_give_several(tmp_path: Path) -> None:
    stems = [f"{video}_f{i}" for video in ("caseA", "caseB", "caseC") for i in range(5)]
    frames = check_user_frames([folders(tmp_path / "mine", stems)], DEFAULT_GROUP_BY)
    train, held, how = split_user_frames(frames, 0.3)
    held_videos = {p.image.stem.split("_")[0] for p in held}
    train_videos = {p.image.stem.split("_")[0] for p in train}
    assert how.startswith("by video") and held_videos == {"caseC"} and train_videos == {"caseA", "caseB"}
    assert len(train) + len(held) == 15


def test_spreads_the_held_back_frames_over_one_recording(tmp_path: Path) -> None:
    frames = check_user_frames([folders(tmp_path / "mine", [f"frame{i:03d}" for i in range(20)])], None)
    train, held, how = split_user_frames(frames, 0.3)
    numbers = sorted(int(p.image.stem[5:]) for p in held)
    assert len(held) == 7 and numbers[0] < 3 and numbers[-1] > 16, "spread over the whole recording"
    assert not {p.image for p in held} & {p.image for p in train}
    assert "optimistic" in how


def test_an_out_folder_with_a_model_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = folders(tmp_path / "mine", [f"clip_f{i}" for i in range(6)])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.pt").write_bytes(b"earlier result")
    code, err = run_adapt(["--data", str(data), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "already holds an adapted model.pt" in err
    assert (tmp_path / "out" / "model.pt").read_bytes() == b"earlier result"


@pytest.mark.slow
def test_adapts_a_model_and_reports_before_and_after(tmp_path: Path, make_dvrk: Callable[..., Path]) -> None:
    meta = ModelMeta(config=preset("fast"), input_height=48, input_width=64)
    checkpoint = save_checkpoint(tmp_path / "start.pt", build_segmenter(meta), meta)
    data = folders(tmp_path / "mine", [f"clip_f{i:02d}" for i in range(12)])
    generated = make_dvrk(4, 3, 48, 64, name="generated")
    out = tmp_path / "adapted"
    code = adapt_main(["--data", str(data), "--checkpoint", str(checkpoint), "--generated", str(generated),
                       "--minutes", "1.2", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["total"] == 12 and report["frames"]["held_back"] == 4
    held = report["held_back"]
    assert held["after"]["iou"] > held["before"]["iou"], "training on bars from random weights must help on held-back bars"
    assert report["seconds"] < 1.2 * 60 + 30, "the command keeps to about its budget"
    model, adapted = load_checkpoint(out / "model.pt")
    assert adapted.threshold == report["threshold"] and "adaptation" in adapted.metrics
    assert (out / "before_after.png").is_file() and "## Your held-back frames" in (out / "report.md").read_text()


def test_counts_at_every_threshold_match_the_metric_of_each_threshold() -> None:
    rng = np.random.default_rng(0)
    prob = rng.random((37, 53)).astype(np.float32)
    prob[0, :5] = [0.1, 0.35, 0.5, 0.9, 0.0]  # values exactly on grid thresholds
    mask = rng.random((37, 53)) > 0.6
    for threshold, counts in zip(THRESHOLDS, counts_at_thresholds(prob, mask, THRESHOLDS), strict=True):
        assert counts == confusion(prob >= threshold, mask), threshold
