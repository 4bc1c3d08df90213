"""The live latency bench (``python -m app.bench --live``) and per-stage timing in the app's stats file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import decode_video

from app.__main__ import main as app_main
from app.bench.__main__ import main
from app.bench.live import LiveFrameSource, goal, limiting_stage, stage_budget
from app.outputs.encoders import encoder_opens
from app.sources.live import LiveSource, parse_live_spec
from models.checkpoint import ModelMeta, build_segmenter, save_checkpoint
from models.unet import preset
from synthetic.shapes import write_test_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights ``fast`` model at a small input (the bench's cost is not what is tested here)."""
    meta = ModelMeta(config=preset("fast"), input_height=64, input_width=96)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "fast.pt", build_segmenter(meta), meta)


def test_live_bench_json_has_the_issue_fields_and_records(checkpoint: Path, tmp_path: Path) -> None:
    report, video = tmp_path / "live.json", tmp_path / "rec.mp4"
    args = ["--live", "192x108@30", "--seconds", "1.5", "--warmup", "0.3", "--live-generator", "pattern",
            "--backend", "onnxruntime-cpu", "--checkpoint", str(checkpoint), "--json", str(report),
            "--record", str(video), "--queue-size", "2"]  # fmt: skip
    assert main(args) == 0
    data = json.loads(report.read_text())
    assert data["backend"].startswith("onnxruntime-cpu") and data["backend_name"] == "onnxruntime-cpu"
    assert data["source"] == {"width": 192, "height": 108, "fps": 30.0, "generator": "pattern"}
    assert data["frames"] > 0 and isinstance(data["dropped"], int) and data["dropped"] >= 0
    assert data["dropped"] == sum(data["drops"].values())
    latency = data["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    stages = data["stages_ms"]
    assert {"capture", "preprocess", "inference", "postprocess", "compose", "encode"} <= set(stages)
    assert all(set(row) >= {"p50", "p99"} and row["p50"] <= row["p99"] for row in stages.values())
    assert data["limiting_stage"] == max(stages, key=lambda name: stages[name]["p50"])
    budget = data["budget"]
    assert budget["fps"] == 30.0 and budget["frame_ms"] == pytest.approx(1000 / 30, abs=1e-3)
    assert set(budget["stages"]) == set(stages)
    for name, row in budget["stages"].items():
        assert row["p50"] == stages[name]["p50"] and row["p99"] == stages[name]["p99"]
        assert row["p99_share"] == pytest.approx(stages[name]["p99"] / budget["frame_ms"], abs=1e-3)
    assert data["queue_size"] == 2 and data["inference_plan"]["workers"] >= 1
    assert data["gpu_path"] is None and data["recording"] == str(video)
    # --codec auto: H.264 through NVENC where it opens, else libx264 (PyAV is a test requirement)
    assert data["recording_codec"] == ("h264_nvenc" if encoder_opens("h264_nvenc") else "libx264")
    assert data["command"].startswith("python -m app.bench --live 192x108@30")
    recorded = decode_video(video)
    assert len(recorded) >= data["frames"] and recorded[0].shape == (108, 192, 3)  # warm-up frames are recorded too


def test_live_bench_refuses_a_bad_size(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--live", "1080x", "--checkpoint", str(checkpoint)]) == 2
    assert "1080p60" in capsys.readouterr().err


def test_live_frame_source_keeps_the_capture_stamp_and_ends_with_the_source() -> None:
    live = LiveSource(parse_live_spec("32x16@200"), generator="pattern", count=2, max_frames=3)
    source = LiveFrameSource(live)
    live.start()
    stamps = []
    while (image := source.read()) is not None:
        assert image.shape == (16, 32, 3)
        stamps.append((source.index, source.last_capture_ns))
    assert stamps and [index for index, _ in stamps] == sorted({index for index, _ in stamps})
    assert all(stamp is not None and stamp > 0 for _, stamp in stamps)
    assert len(stamps) + live.dropped == 3


def test_limiting_stage_and_goal() -> None:
    stages = {"capture": {"p50": 0.1, "p99": 9.0}, "inference": {"p50": 5.0, "p99": 6.0}}
    assert limiting_stage(stages) == "inference" and limiting_stage({}) is None
    assert goal({"p50": 7.9, "p99": 16.0}, 0)["met"]
    assert not goal({"p50": 7.9, "p99": 16.0}, 1)["met"] and not goal({"p50": 8.1, "p99": 9.0}, 0)["met"]


def test_stage_budget_is_each_stage_against_the_frame_period() -> None:
    budget = stage_budget({"inference": {"p50": 33.4, "p99": 50.1}, "compose": {"p50": 4.175, "p99": 8.35}}, 60.0)
    assert budget["frame_ms"] == pytest.approx(16.667, abs=1e-3)
    assert budget["stages"]["inference"] == {"p50": 33.4, "p99": 50.1, "p50_share": 2.004, "p99_share": 3.006}
    assert budget["stages"]["compose"]["p50_share"] == pytest.approx(0.25, abs=1e-3)


def test_app_stats_file_has_stages_ms(checkpoint: Path, tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "in.mp4", num_frames=6, width=128, height=96)
    stats, out = tmp_path / "stats.json", tmp_path / "out.mp4"
    assert app_main(["--source", str(video), "--checkpoint", str(checkpoint), "--window", "off",
                     "--output", str(out), "--stats", str(stats)]) == 0  # fmt: skip
    stages = json.loads(stats.read_text())["summary"]["stages_ms"]
    assert {"capture", "preprocess", "inference", "postprocess", "compose", "encode"} <= set(stages)
    assert all(stages[name]["count"] == 6 for name in ("capture", "inference", "compose", "encode"))
