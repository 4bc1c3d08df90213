"""A real OpenCV window under Xvfb: the overlay colour is on screen, and the s/q keys work (via xdotool)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.display import WINDOW_TITLE
from models.checkpoint import ModelMeta, build_segmenter, save_checkpoint
from models.unet import preset
from synthetic.shapes import write_test_video

REPO = Path(__file__).resolve().parents[1]


def free_display() -> int:
    for number in range(91, 300):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number in :91..:299")


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    """Start Xvfb on a free display; yields ``:N``."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    number = free_display()
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip(f"Xvfb did not start on :{number}")
        time.sleep(0.05)
    yield f":{number}"
    server.terminate()
    server.wait(10)


def screenshot(display: str, path: Path) -> np.ndarray:
    """The whole X screen as BGR, via ImageMagick ``import`` or ``xwd`` + ``convert``."""
    env = {**os.environ, "DISPLAY": display}
    if shutil.which("import"):
        subprocess.run(["import", "-window", "root", str(path)], env=env, check=True, timeout=30)
    elif shutil.which("xwd") and shutil.which("convert"):
        xwd = subprocess.run(["xwd", "-root", "-silent"], env=env, check=True, timeout=30, capture_output=True).stdout
        subprocess.run(["convert", "xwd:-", str(path)], input=xwd, check=True, timeout=30)
    else:
        pytest.skip("no screen grabber (apt-get install imagemagick)")
    image = cv2.imread(str(path))
    assert image is not None, f"screenshot {path} unreadable"
    return image


def blue_fraction(image: np.ndarray) -> float:
    """Share of pixels that are the blended blue overlay (alpha 0.9 over a reddish/grey scene)."""
    b, g, r = (image[..., k].astype(int) for k in range(3))
    return float(np.mean((b > 200) & (r < 90) & (g < 90)))


def test_window_shows_overlay_and_keys_work(xvfb: str, tmp_path: Path) -> None:
    meta = ModelMeta(config=preset("fast"))
    model = build_segmenter(meta)
    model.unet.head.bias.data.fill_(6.0)  # everything is "instrument": the whole frame gets the overlay
    checkpoint = save_checkpoint(tmp_path / "all.pt", model, meta)
    video = write_test_video(tmp_path / "in.mp4", num_frames=1500, width=320, height=240, fps=25.0)
    shots = tmp_path / "shots"
    env = {**os.environ, "DISPLAY": xvfb, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "xcb"}
    env.pop("WAYLAND_DISPLAY", None)
    command = [sys.executable, "-m", "app", "--source", str(video), "--checkpoint", str(checkpoint), "--window", "on"]
    process = subprocess.Popen(
        [*command, "--color", "blue", "--alpha", "0.9", "--no-contours", "--screenshot-dir", str(shots)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "in.mp4" in process.stdout.readline(), process.stderr.read()
        fraction = 0.0
        deadline = time.monotonic() + 30
        while fraction < 0.02 and time.monotonic() < deadline:  # the window may take a moment to map
            time.sleep(1.0)
            assert process.poll() is None, process.stderr.read()
            fraction = blue_fraction(screenshot(xvfb, tmp_path / "screen.png"))
        # A 320×240 window on a 1024×768 screen is ~10% of it; most of the window is overlay.
        assert fraction > 0.02, f"overlay colour covers only {fraction:.3%} of the screen"

        if shutil.which("xdotool") is None:
            process.terminate()
            pytest.skip("xdotool not installed: key presses not tested")
        xenv = {**os.environ, "DISPLAY": xvfb}
        window = subprocess.run(
            ["xdotool", "search", "--sync", "--name", WINDOW_TITLE],
            env=xenv,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.split()
        assert window, "xdotool did not find the window"
        for key in ("s", "q"):
            subprocess.run(["xdotool", "windowfocus", "--sync", window[-1]], env=xenv, timeout=20, check=False)
            subprocess.run(["xdotool", "key", "--clearmodifiers", key], env=xenv, timeout=20, check=True)
            time.sleep(1.0)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "stopped     quit key" in stdout
    saved = sorted(shots.glob("*.png"))
    assert saved, f"'s' saved no screenshot: {stdout}"
    assert blue_fraction(cv2.imread(str(saved[0]))) > 0.5


def test_display_reads_its_sink_and_keys_change_the_view(xvfb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: a real pipeline with ``show`` feeds a real window through its DisplaySink only."""
    from app.core.overlay import OverlayStyle, parse_color
    from app.display import Display
    from app.pipeline import Pipeline, PipelineConfig
    from app.sources.source import open_source
    from engine.backends import create_backend

    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    meta = ModelMeta(config=preset("fast"))
    model = build_segmenter(meta)
    model.unet.head.bias.data.fill_(6.0)
    backend = create_backend(save_checkpoint(tmp_path / "all.pt", model, meta), "onnxruntime-cpu", threads=1)
    source = open_source(str(write_test_video(tmp_path / "in.mp4", num_frames=8, width=160, height=120)))
    style = OverlayStyle(color=parse_color("blue"), alpha=0.9, contours=False)
    pipeline = Pipeline(source, backend, PipelineConfig(show=True, style=style))
    assert pipeline.display is not None and pipeline.display.size == (120, 160)
    display = Display(pipeline.display, pipeline.view, pipeline, tmp_path / "shots", title="in-process test")
    try:
        pipeline.start()
        display.loop()  # returns once the sink is closed and drained
        pipeline.join()
        assert pipeline.error is None and pipeline.summary()["frames"] == 8
        shown_count = pipeline.summary()["stages_ms"]["display"]["count"]
        assert 1 <= shown_count <= 8  # the window times each frame it shows (latest wins: it may skip some)
        assert display.last is not None and display.last.shape == (120, 160, 3)
        shot = display.screenshot()
        shown = cv2.imread(str(shot))
        # The overlay covers the frame except where the HUD's dark boxes (figures, key legend) are drawn.
        assert shot is not None and 0.3 < blue_fraction(shown) < 0.9
        assert shown[:20, :60].mean() < shown[50:70, 60:100].mean(), "the display shows the HUD"
        assert display.handle_key(ord("o")) is False and pipeline.view.overlay is False
        assert display.handle_key(ord("m")) is False and pipeline.view.mask_only is True
        assert display.handle_key(ord("q")) is True and display.handle_key(27) is True
    finally:
        display.close()
        source.close()
        backend.close()
