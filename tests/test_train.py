"""End-to-end CPU training runs through the ``training.train`` CLI entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import write_dvrk_video

from models.checkpoint import load_checkpoint, read_checkpoint
from training.ema import WeightEMA
from training.train import main
from training.train_optim import warmup_cosine

TINY = ["--width", "4", "--depth", "2", "--batch-size", "4", "--workers", "1", "--threads", "1"]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_resume_continues_epochs_and_optimizer(make_dvrk, tmp_path: Path) -> None:
    data = make_dvrk(3, 4)  # 3 videos x 4 frames, 24x32
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--input-size", "24x32", "--val-videos", "1", *TINY]
    assert main([*common, "--epochs", "1"]) == 0
    first = read_checkpoint(out / "last.pt")["extra"]
    steps_per_epoch = first["state"]["global_step"]
    assert first["state"]["epoch"] == 1 and steps_per_epoch == 2  # 8 train frames / batch 4
    assert all(s["step"] == steps_per_epoch for s in first["optimizer"]["state"].values())

    assert main([*common, "--epochs", "2", "--resume"]) == 0
    second = read_checkpoint(out / "last.pt")["extra"]
    assert second["state"]["epoch"] == 2
    # Adam's step counters and the scheduler continue from the first run instead of restarting.
    assert all(s["step"] == 2 * steps_per_epoch for s in second["optimizer"]["state"].values())
    assert second["scheduler"]["last_epoch"] == 2 * steps_per_epoch
    # The weight average resumes too: one update per optimiser step over both runs.
    assert first["ema"]["updates"] == steps_per_epoch and second["ema"]["updates"] == 2 * steps_per_epoch
    rows = _csv_rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    summary = json.loads((out / "metrics.json").read_text())
    assert len(summary["epochs"]) == 2 and summary["epochs_done"] == 2
    assert (out / "curves.png").stat().st_size > 0
    model, meta = load_checkpoint(out / "best.pt")
    assert meta.input_size == (24, 32) and meta.config.base_width == 4
    assert meta.data["layout"] == "dvrk" and len(meta.data["val_videos"]) == 1
    assert set(meta.data["train_videos"]).isdisjoint(meta.data["val_videos"])
    assert meta.training["seed"] == 0
    _, last_meta = load_checkpoint(out / "last.pt")
    assert "--resume" in last_meta.training["command"] and last_meta.training["epochs"] == 2
    assert 0.0 < meta.threshold < 1.0 and "iou" in meta.metrics["validation"]
    assert model(torch.zeros(1, 24, 32, 3, dtype=torch.uint8)).shape == (1, 1, 24, 32)


def test_init_from_fine_tunes_with_fresh_optimizer(make_dvrk, tmp_path: Path, capsys) -> None:
    data = make_dvrk(3, 4)
    base = ["--data", str(data), "--input-size", "24x32", "--val-videos", "1", *TINY]
    assert main([*base, "--out", str(tmp_path / "a"), "--epochs", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--epochs", "1", "--init-from", str(tmp_path / "a" / "last.pt")]) == 0
    tuned = read_checkpoint(tmp_path / "b" / "last.pt")["extra"]
    assert tuned["state"]["epoch"] == 1 and tuned["scheduler"]["last_epoch"] == tuned["state"]["global_step"]
    _, meta = load_checkpoint(tmp_path / "b" / "last.pt")
    assert meta.training["init_from"].endswith("last.pt") and meta.config.base_width == 4
    assert main([*base, "--out", str(tmp_path / "a"), "--resume", "--init-from", str(tmp_path / "a" / "last.pt")]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_time_budget_stops_cleanly(make_dvrk, tmp_path: Path) -> None:
    data = make_dvrk(2, 4)
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--input-size", "24x32", "--val-videos", "1", *TINY]
    assert main([*args, "--epochs", "5", "--max-train-minutes", "0"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["epochs_done"] == 1 and summary["stopped"].startswith("time budget")
    assert summary["epochs"][0]["partial"] is True and summary["epochs"][0]["train_images"] == 4  # one step
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()


def test_cosine_decay_follows_the_larger_of_steps_and_time() -> None:
    used = [0.0]
    factor = warmup_cosine(total_steps=1000, warmup_steps=10, floor=0.01, time_fraction=lambda: used[0])
    assert factor(4) == pytest.approx(0.5)  # warm-up is counted in steps
    assert factor(10) == pytest.approx(1.0)
    used[0] = 0.5  # half the time budget gone after 1 % of the steps: half-way down the cosine
    assert factor(20) == pytest.approx(0.505)
    used[0] = 1.2
    assert factor(20) == pytest.approx(0.01)
    assert warmup_cosine(1000, 10, 0.01)(505) == pytest.approx(0.505)  # steps alone without a clock


def test_anneal_to_budget_ends_at_the_low_learning_rate(make_dvrk, tmp_path: Path, capsys) -> None:
    data = make_dvrk(2, 4)
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--input-size", "24x32", "--val-videos", "1", *TINY, "--lr", "1e-2"]
    assert main([*args, "--epochs", "100000", "--anneal-to-budget"]) == 2
    assert "--anneal-to-budget needs --max-train-minutes" in capsys.readouterr().err
    budget = ["--epochs", "100000", "--max-train-minutes", "0.03", "--anneal-to-budget", "--warmup-steps", "1"]
    assert main([*args, *budget, "--loader-workers", "2", "--patience", "0"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["stopped"].startswith("time budget") and summary["epochs_done"] >= 2
    rates = [row["lr"] for row in summary["epochs"]]
    assert rates[-1] == pytest.approx(1e-4)  # the floor, 1 % of the peak, although few of the 1e5 epochs ran
    assert rates == sorted(rates, reverse=True) and rates[0] > 1e-4
    _, meta = load_checkpoint(out / "last.pt")
    assert meta.training["anneal_to_budget"] is True and meta.training["max_train_minutes"] == 0.03


def test_bad_data_reports_the_problem(make_dvrk, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dvrk(1, 2)
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), "--val-videos", "1"]) == 2
    assert "both the training and the validation split need at least one video" in capsys.readouterr().err


@pytest.mark.slow
def test_overfits_a_few_frames(tmp_path: Path) -> None:
    # The same 4 frames of drawn shapes for training (repeated) and validation: IoU must get high.
    root = tmp_path / "data"
    write_dvrk_video(root / "Video_01", [(f"{c * 4 + i:03d}", i) for c in range(8) for i in range(4)], 64, 80)
    write_dvrk_video(root / "Video_02", [(f"{i:03d}", i) for i in range(4)], 64, 80)
    out = tmp_path / "run"
    args = ["--data", str(root), "--out", str(out), "--input-size", "64x80", "--width", "4", "--depth", "3"]
    args += ["--epochs", "12", "--batch-size", "4", "--val-videos", "Video_02", "--no-augment", "--lr", "1e-2"]
    assert main([*args, "--patience", "0", "--workers", "1"]) == 0  # 12 epochs x 8 steps = 96 steps
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["epochs"][-1]["val_iou"] >= 0.8
    _, meta = load_checkpoint(out / "best.pt")
    assert meta.metrics["validation"]["iou"] >= 0.85  # at the picked threshold
    assert meta.metrics["validation"]["iou"] >= meta.metrics["validation_at_0.5"]["iou"]


def test_weight_ema_tracks_the_model_with_warm_up() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    ema = WeightEMA(model, 0.99)
    start = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.randn(4, 1, 8, 8))  # training-mode BN: running stats and the batch counter move
    assert ema.current_decay() == pytest.approx(0.1)  # warm-up: (1 + 0) / (10 + 0)
    ema.update(model)
    averaged, current = ema.model.state_dict(), model.state_dict()
    expected = 0.1 * start["0.weight"] + 0.9 * current["0.weight"]
    assert torch.allclose(averaged["0.weight"], expected)
    assert torch.allclose(averaged["1.running_mean"], 0.1 * start["1.running_mean"] + 0.9 * current["1.running_mean"])
    assert int(averaged["1.num_batches_tracked"]) == 1  # integer buffers are copied, not averaged
    assert not any(p.requires_grad for p in ema.model.parameters())
    for _ in range(2000):
        ema.update(model)
    assert ema.current_decay() == 0.99
    assert torch.allclose(ema.model.state_dict()["0.weight"], current["0.weight"], atol=1e-5)
    restored = WeightEMA(model, 0.99)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == ema.updates
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(model, 1.0)


def test_several_data_roots_train_together(make_dvrk, tmp_path: Path, capsys) -> None:
    first, second = make_dvrk(2, 3, name="synthetic"), make_dvrk(2, 4, name="mine")
    args = ["--data", str(first), str(second), "--input-size", "24x32", "--epochs", "1", *TINY]
    assert main([*args, "--out", str(tmp_path / "run"), "--val-videos", "mine/Video_02"]) == 0
    _, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    assert meta.data["train_videos"] == ["synthetic/Video_01", "synthetic/Video_02", "mine/Video_01"]
    assert meta.data["val_videos"] == ["mine/Video_02"]
    assert meta.data["train_frames"] == 3 + 3 + 4 and meta.data["val_frames"] == 4
    assert [r["layout"] for r in meta.data["roots"]] == ["dvrk", "dvrk"] and meta.data["root"] is None
    # Two roots with the same folder name would give clashing video names.
    clash = make_dvrk(2, 3, name="other/synthetic")
    assert main(["--data", str(first), str(clash), "--out", str(tmp_path / "bad"), *TINY]) == 2
    assert "share the folder name" in capsys.readouterr().err


def test_data_weights_sample_each_root_and_validate_each_root(make_dvrk, tmp_path: Path, capsys) -> None:
    """Two roots, weights 3:1, 8 samples per epoch: 6 frames from the first root, 2 from the second; a
    count of validation videos holds out that many from EACH root; every epoch reports each root."""
    real, generated = make_dvrk(3, 2, name="real"), make_dvrk(3, 4, name="generated")
    out = tmp_path / "run"
    args = ["--data", str(real), str(generated), "--data-weights", "3", "1", "--epoch-samples", "8"]
    assert main([*args, "--input-size", "24x32", "--epochs", "2", "--val-videos", "1", "--out", str(out), *TINY]) == 0
    log = capsys.readouterr().out
    assert "each epoch samples 8 frames: real 6, generated 2" in log
    _, meta = load_checkpoint(out / "best.pt")
    assert meta.data["data_weights"] == {"real": 3.0, "generated": 1.0}
    assert sorted(v.split("/")[0] for v in meta.data["val_videos"]) == ["generated", "real"]
    rows = _csv_rows(out / "metrics.csv")
    assert [int(r["train_images"]) for r in rows] == [8, 8]
    for row in rows:
        for root in ("real", "generated"):
            assert 0.0 <= float(row[f"val_{root}_iou"]) <= 1.0 and f"val_{root}_recall" in row
        # the epoch score is the mean of the per-root IoUs
        mean = (float(row["val_real_iou"]) + float(row["val_generated_iou"])) / 2
        assert float(row["val_score"]) == pytest.approx(mean)
    assert "real IoU" in log and "generated IoU" in log


def test_data_weights_must_match_the_roots(make_dvrk, tmp_path: Path, capsys) -> None:
    first, second = make_dvrk(2, 2, name="a"), make_dvrk(2, 2, name="b")
    common = ["--data", str(first), str(second), "--out", str(tmp_path / "run"), *TINY]
    assert main([*common, "--data-weights", "1"]) == 2
    assert "--data-weights has 1 value(s) [1.0] for 2 --data root(s)" in capsys.readouterr().err
    assert main([*common, "--data-weights", "0", "0"]) == 2
    assert "positive sum" in capsys.readouterr().err


def test_default_warm_up_is_at_most_one_epoch() -> None:
    """With --epochs set high (as --anneal-to-budget invites), the default warm-up must not stretch over
    3 % of a huge step count: it ends after one epoch, and the LR is at its peak there."""
    from training.train_args import build_parser
    from training.train_optim import build_optimisation

    args = build_parser().parse_args(["--data", "d", "--out", "o", "--epochs", "1000", "--lr", "1.0", "--ema", "0"])
    opt = build_optimisation(args, torch.nn.Linear(1, 1), steps_per_epoch=10, scale_gradients=False)
    lrs = []
    for _ in range(10):
        lrs.append(opt.optimizer.param_groups[0]["lr"])
        opt.optimizer.step()
        opt.scheduler.step()
    assert lrs[0] == pytest.approx(0.1) and lrs == sorted(lrs)
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(1.0, rel=1e-3)
