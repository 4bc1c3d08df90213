"""The soak test (``python -m app.bench --soak``): its pass rules on made-up rows, and the real command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from app.bench.__main__ import main
from app.bench.soak import SoakRules, judge, minute_row, p99_windows, process_sample
from models.checkpoint import ModelMeta, build_segmenter, save_checkpoint
from models.unet import preset

RULES = SoakRules()
BASE = {"rss_kib": 400_000, "fds": 20, "threads": 12}
REPORT_KEYS = {"minutes", "rss_growth_percent", "p99_drift_percent", "fd_growth", "thread_growth", "passed", "failures",
               "per_minute", "command", "machine", "rules", "warmup_s", "p99_window", "recording"}  # fmt: skip
ROW_KEYS = {"minute", "rss_mib", "fds", "threads", "latency_p50_ms", "latency_p99_ms", "dropped", "output_bytes", "load_average"}


def test_a_steady_run_passes() -> None:
    verdict = judge(BASE, {"rss_kib": 410_000, "fds": 20, "threads": 11}, 90.0, 100.0, RULES)
    assert verdict["passed"] and verdict["failures"] == []
    assert verdict["rss_growth_percent"] == 2.5 and verdict["p99_drift_percent"] == pytest.approx(11.11)
    assert verdict["fd_growth"] == 0 and verdict["thread_growth"] == -1


@pytest.mark.parametrize(
    ("final", "p99_last", "reason"),
    [
        ({"rss_kib": 420_000, "fds": 20, "threads": 12}, 90.0, "RSS grew 5.0 %"),  # 5 % is not below 5 %
        ({"rss_kib": 400_000, "fds": 20, "threads": 12}, 108.1, "p99 drifted +20.1 %"),
        ({"rss_kib": 400_000, "fds": 20, "threads": 12}, 71.9, "p99 drifted -20.1 %"),
        ({"rss_kib": 400_000, "fds": 21, "threads": 12}, 90.0, "open file descriptors grew by 1 (20 → 21)"),
        ({"rss_kib": 400_000, "fds": 20, "threads": 14}, 90.0, "threads grew by 2 (12 → 14)"),
        ({"rss_kib": 400_000, "fds": 20, "threads": 12}, None, "no latency samples"),
    ],
)
def test_each_rule_fails_with_its_reason(final: dict[str, int], p99_last: float | None, reason: str) -> None:
    verdict = judge(BASE, final, 90.0, p99_last, RULES)
    assert not verdict["passed"] and len(verdict["failures"]) == 1 and reason in verdict["failures"][0]


def test_several_failures_are_all_named() -> None:
    verdict = judge(BASE, {"rss_kib": 600_000, "fds": 30, "threads": 13}, 50.0, 100.0, RULES)
    assert not verdict["passed"] and len(verdict["failures"]) == 4
    assert verdict["rss_growth_percent"] == 50.0 and verdict["p99_drift_percent"] == 100.0 and verdict["fd_growth"] == 10


def test_p99_windows_are_5_minutes_on_long_runs_and_a_fifth_on_short_ones() -> None:
    steady_then_slow = [10.0] * 900 + [30.0] * 100  # the last tenth is slow
    long = p99_windows(steady_then_slow, 29 * 60.0, RULES)
    assert long["seconds"] == 300 and long["frames"] == round(1000 * 300 / (29 * 60)) and "5 minutes" in long["rule"]
    assert long["p99_first_ms"] == 10.0 and long["p99_last_ms"] == 30.0
    short = p99_windows(steady_then_slow, 60.0, RULES)
    assert short["seconds"] == 12 and short["frames"] == 200 and "fifth" in short["rule"]
    assert p99_windows([], 60.0, RULES)["p99_first_ms"] is None


def test_minute_row_takes_its_minute_of_latencies() -> None:
    prev = {"t_s": 60.0, "latencies": 2, "emitted": 100, "dropped": 5}
    now = {"t_s": 120.0, "latencies": 5, "emitted": 160, "dropped": 9, "rss_kib": 2048, "fds": 7, "threads": 3,
           "output_bytes": 10, "load_average": [1.0, 0.5, 0.2]}  # fmt: skip
    row = minute_row(2, prev, now, [99.0, 99.0, 1.0, 2.0, 3.0, 99.0], warmup_s=60.0)
    assert row["frames"] == 3 and row["latency_p50_ms"] == 2.0 and row["emitted"] == 60 and row["dropped"] == 4
    assert row["after_warmup"] and row["rss_mib"] == 2.0 and set(row) >= ROW_KEYS


def test_process_sample_reads_proc_self() -> None:
    sample = process_sample()
    assert sample["rss_kib"] > 10_000 and sample["fds"] >= 3 and sample["threads"] >= 1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights ``fast`` model at a small input."""
    meta = ModelMeta(config=preset("fast"), input_height=64, input_width=96)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "fast.pt", build_segmenter(meta), meta)


def test_a_three_second_soak_writes_its_report(checkpoint: Path, tmp_path: Path) -> None:
    code = main(["--soak", "192x108@30", "--minutes", "0.05", "--output-dir", str(tmp_path / "out"), "--live-generator", "pattern",
                 "--backend", "onnxruntime-cpu", "--checkpoint", str(checkpoint)])  # fmt: skip
    (report,) = (tmp_path / "out").glob("soak-108p30-*.json")
    data = json.loads(report.read_text())
    assert code == (0 if data["passed"] else 1) and set(data) >= REPORT_KEYS and data["warmup_s"] == 1.5
    assert len(data["per_minute"]) == 1 and set(data["per_minute"][0]) >= ROW_KEYS and data["recording_frames"] > 0
    assert Path(data["recording"]).is_file() and data["recording"] == str(report.with_suffix(".mp4"))


def test_soak_refuses_a_run_without_an_output_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--soak", "1080p60", "--minutes", "1"]) == 2
    assert "--output-dir" in capsys.readouterr().err


def _decodes(path: Path, frames: int) -> bool:
    """The first and the last frame of ``path`` decode (the file was finalised), and it holds ``frames`` frames."""
    capture = cv2.VideoCapture(str(path))
    try:
        first_ok = capture.isOpened() and capture.read()[0]
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.set(cv2.CAP_PROP_POS_FRAMES, count - 1)
        ok, last = capture.read()
        return bool(first_ok and ok and last.shape == (1080, 1920, 3) and count == frames)
    finally:
        capture.release()


@pytest.mark.slow
def test_the_real_soak_command_for_two_minutes(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    code = main(["--soak", "1080p60", "--minutes", "2", "--output-dir", str(tmp_path), "--json", str(report)])
    data = json.loads(report.read_text())
    assert code == (0 if data["passed"] else 1), data["failures"]
    assert set(data) >= REPORT_KEYS and data["minutes"] == 2 and data["warmup_s"] == 60 and data["stop_reason"] == "time up"
    rows = data["per_minute"]
    assert [row["minute"] for row in rows] == [1, 2] and all(set(row) >= ROW_KEYS for row in rows)
    assert not rows[0]["after_warmup"] and rows[1]["after_warmup"] and rows[1]["frames"] > 0
    assert data["machine"]["logical_cpus"] and data["rules"]["rss_growth_percent_max"] == 5.0
    assert _decodes(Path(data["recording"]), data["recording_frames"])
