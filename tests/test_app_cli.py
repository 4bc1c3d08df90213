"""``python -m app``: bad input fails before any thread starts (exit 2); SIGINT/SIGTERM finalise the output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import decode_video

from app.__main__ import main
from synthetic.shapes import write_test_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("video") / "in.mp4", num_frames=10, width=160, height=120)


@pytest.fixture
def started_threads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Names of the threads started during the test (``Thread.start`` is wrapped, not replaced)."""
    monkeypatch.chdir(tmp_path)  # the default out/overlay.mp4 must not land in the repository
    names: list[str] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        names.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return names


def run_bad(args: list[str], started: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main([*args, "--window", "off"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not [n for n in started if n.startswith("surgseg-")], f"threads started: {started}"
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    return err


def test_missing_file(checkpoint: Path, tmp_path: Path, started_threads: list[str], capsys) -> None:
    err = run_bad(["--source", str(tmp_path / "nope.mp4"), "--checkpoint", str(checkpoint)], started_threads, capsys)
    assert "nope.mp4" in err and "no such file" in err and "expected" in err


def test_not_a_video(checkpoint: Path, tmp_path: Path, started_threads: list[str], capsys) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    err = run_bad(["--source", str(junk), "--checkpoint", str(checkpoint)], started_threads, capsys)
    assert "junk.mp4" in err and "expected a video file" in err


def test_unopenable_camera(checkpoint: Path, started_threads: list[str], capsys) -> None:
    err = run_bad(["--source", "9", "--checkpoint", str(checkpoint)], started_threads, capsys)
    assert "camera 9" in err and "expected a working camera" in err


def test_missing_camera_device(checkpoint: Path, started_threads: list[str], capsys) -> None:
    err = run_bad(["--source", "/dev/video99", "--checkpoint", str(checkpoint)], started_threads, capsys)
    assert "/dev/video99" in err and "no such camera device" in err


def test_unsupported_url_scheme(checkpoint: Path, started_threads: list[str], capsys) -> None:
    err = run_bad(["--source", "ftp://example.com/clip.mp4", "--checkpoint", str(checkpoint)], started_threads, capsys)
    assert "unsupported URL scheme 'ftp'" in err and "rtsp" in err


def test_gstreamer_pipeline_without_gstreamer(checkpoint: Path, started_threads: list[str], capsys) -> None:
    from app.sources.source import opencv_has_gstreamer

    if opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    err = run_bad(["--source", "videotestsrc ! appsink", "--checkpoint", str(checkpoint)], started_threads, capsys)
    assert "this OpenCV was built without GStreamer" in err


def test_unwritable_output(checkpoint: Path, video: Path, tmp_path: Path, started_threads: list[str], capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    args = ["--source", str(video), "--checkpoint", str(checkpoint), "--output", str(blocker / "out.mp4")]
    err = run_bad(args, started_threads, capsys)
    assert "--output" in err and str(blocker) in err
    err = run_bad(
        ["--source", str(video), "--checkpoint", str(checkpoint), "--save-masks", str(blocker)], started_threads, capsys
    )
    assert "--save-masks" in err and "not a directory" in err


def test_missing_model(video: Path, tmp_path: Path, started_threads: list[str], capsys) -> None:
    err = run_bad(["--source", str(video), "--checkpoint", str(tmp_path / "m.pt")], started_threads, capsys)
    assert "--checkpoint" in err and "m.pt" in err and "no such file" in err


def test_incompatible_model(video: Path, tmp_path: Path, started_threads: list[str], capsys) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    err = run_bad(["--source", str(video), "--checkpoint", str(bad)], started_threads, capsys)
    assert "--checkpoint" in err and "bad.pt" in err


def test_help_lists_keys(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for key in ("space pause", "o overlay", "m mask", "c contours", "s screenshot", "q/Esc quit"):
        assert key in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_output_plays(sig: signal.Signals, checkpoint: Path, tmp_path: Path) -> None:
    long_video = write_test_video(tmp_path / "long.mp4", num_frames=2000, width=96, height=64, fps=25.0)
    out = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    command = [sys.executable, "-m", "app", "--source", str(long_video), "--checkpoint", str(checkpoint)]
    process = subprocess.Popen(
        [*command, "--output", str(out), "--realtime"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = process.stdout.readline()  # printed just before the threads start
        assert "long.mp4" in first, process.stderr.read()
        time.sleep(2.0)
        assert process.poll() is None, "finished before the signal: make the input longer"
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert f"stopped     {sig.name}" in stdout
    decoded = decode_video(out)
    assert all(frame.shape == (64, 96, 3) for frame in decoded)
    frames = len(decoded)
    written = int(stdout.split("output")[1].split("(")[1].split()[0])
    assert 0 < frames == written < 2000
