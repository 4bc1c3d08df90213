"""Bad inputs to ``python -m app``: a table a reviewer can extend.

Each :class:`Case` builds real files in a fresh folder (real mp4s, real corrupt files, real clashing
paths), runs the CLI in-process and asserts: the exit code; a message naming the value and the
option; no traceback; no password; and that nothing in the folder changed (no partial output, the
source untouched). Add a row to ``CASES`` to cover a new bad input.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import fast_checkpoint

from app.__main__ import main
from app.encoders import encoder_opens
from synthetic.shapes import write_test_video

SECRET = "s3cr3t-pw"


@dataclass
class Env:
    """Files a case can use; all inside ``root`` (the working directory of the run)."""

    root: Path
    checkpoint: Path
    video: Path
    folder: Path  #: an image folder of 4 PNGs


@dataclass
class Case:
    """One bad input: ``args(env)`` → the CLI arguments; the run must exit ``code`` naming ``expect``."""

    name: str
    args: Callable[[Env], list[str]]
    expect: tuple[str, ...]
    code: int = 2
    absent: tuple[str, ...] = field(default_factory=tuple)  #: must not appear in the message
    setup: Callable[[Env], None] | None = None
    skip: Callable[[], str | None] | None = None


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _pickled_object(env: Env) -> None:
    # A pickle that would call os.system on a full load: a safe load must refuse it, without advice to load it unsafely.
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, ("true",)

    _write(env.root / "evil.pt", pickle.dumps({"format": "x", "payload": Evil()}))


def _earlier_masks(env: Env) -> None:
    (env.root / "masks").mkdir()
    for i in range(3):
        cv2.imwrite(str(env.root / "masks" / f"{i:06d}.png"), np.zeros((4, 4), np.uint8))


def _earlier_masks_and_notes(env: Env) -> None:
    _earlier_masks(env)
    (env.root / "masks" / "notes.txt").write_text("keep me")


def _hard_link(env: Env) -> None:
    os.link(env.video, env.root / "link.mp4")


def _no_nvenc() -> str | None:
    return "NVENC opens here" if encoder_opens("h264_nvenc") else None


def cli(*args: str) -> Callable[[Env], list[str]]:
    """The arguments of a case: the test model, no window, then ``args`` (a repeated option overrides these)."""
    return lambda env: ["--checkpoint", str(env.checkpoint), "--window", "off", *args]


CASES = [
    # -- clashing paths: the source and the outputs -----------------------------------------------
    Case("output is the source", cli("--source", "in.mp4", "--output", "in.mp4"), ("--output in.mp4", "is the source")),
    Case("output is the source, other spelling", cli("--source", "in.mp4", "--output", "./sub/../in.mp4"),
         ("--output", "is the source"), setup=lambda e: (e.root / "sub").mkdir()),
    Case("output is a hard link to the source", cli("--source", "in.mp4", "--output", "link.mp4"),
         ("--output link.mp4", "is the source"), setup=_hard_link),
    Case("stats is the output", cli("--source", "in.mp4", "--output", "o.mp4", "--stats", "o.mp4"),
         ("--output o.mp4", "--stats o.mp4")),
    Case("stats is the source", cli("--source", "in.mp4", "--stats", "in.mp4"), ("--stats in.mp4", "is the source")),
    Case("masks into the source folder", cli("--source", "frames", "--save-masks", "frames"),
         ("--save-masks frames", "is the source")),
    Case("output inside the masks folder", cli("--source", "in.mp4", "--save-masks", "m", "--output", "m/o.mp4"),
         ("--save-masks m", "--output m/o.mp4")),
    Case("masks folder of an earlier run", cli("--source", "in.mp4", "--save-masks", "masks"),
         ("--save-masks masks", "not empty", "--overwrite"), setup=_earlier_masks),
    Case("--overwrite but the folder holds other files", cli("--source", "in.mp4", "--save-masks", "masks", "--overwrite"),
         ("--save-masks masks", "notes.txt"), setup=_earlier_masks_and_notes),
    # -- unwritable / unsupported outputs -----------------------------------------------------------
    Case("output in /proc", cli("--source", "in.mp4", "--output", "/proc/x.mp4"), ("--output /proc/x.mp4", "'proc' file system")),
    Case("output is a FIFO", cli("--source", "in.mp4", "--output", "pipe.mp4"), ("--output pipe.mp4", "not a regular file"),
         setup=lambda e: os.mkfifo(e.root / "pipe.mp4")),
    Case("stats is a FIFO", cli("--source", "in.mp4", "--stats", "pipe.json"), ("--stats pipe.json", "not a regular file"),
         setup=lambda e: os.mkfifo(e.root / "pipe.json")),
    Case("output container unknown", cli("--source", "in.mp4", "--output", "o.xyz"), ("--output o.xyz", ".xyz", "expected")),
    Case("h264 into avi", cli("--source", "in.mp4", "--output", "o.avi", "--codec", "h264"), ("--codec h264", "o.avi")),
    Case("nvenc without an NVIDIA GPU", cli("--source", "in.mp4", "--output", "o.mp4", "--codec", "h264_nvenc"),
         ("--codec h264_nvenc", "NVENC"), skip=_no_nvenc),
    # -- display --------------------------------------------------------------------------------------
    Case("window on without a display", cli("--source", "in.mp4", "--window", "on", "--output", "o.mp4"),
         ("--window on", "no display")),
    # -- options --------------------------------------------------------------------------------------
    Case("negative fps", cli("--source", "frames", "--fps", "-5"), ("--fps: -5:", "expected frames per second"), absent=("--output",)),
    Case("zero fps", cli("--source", "frames", "--fps", "0"), ("--fps: 0:", "expected frames per second")),
    Case("nan fps", cli("--source", "frames", "--fps", "nan"), ("--fps: nan:", "expected frames per second")),
    Case("negative reconnect attempts", cli("--source", "in.mp4", "--reconnect-attempts", "-1"),
         ("--reconnect-attempts: -1:", "expected 0 (forever)")),
    Case("smooth not a number", cli("--source", "in.mp4", "--smooth", "abc"), ("--smooth", "'abc' is not a number"),
         absent=("invalid parse value",)),
    Case("alpha out of range", cli("--source", "in.mp4", "--alpha", "2"), ("--alpha: 2:", "[0.0, 1.0]")),
    Case("max frames not whole", cli("--source", "in.mp4", "--max-frames", "1.5"), ("--max-frames", "'1.5'", "whole number"),
         absent=("invalid _positive_int",)),
    Case("unknown codec", cli("--source", "in.mp4", "--codec", "hevc"), ("--codec", "hevc")),
    # -- broken inputs --------------------------------------------------------------------------------
    Case("source is zeros", cli("--source", "zeros.mp4"), ("zeros.mp4", "expected a video file"),
         setup=lambda e: _write(e.root / "zeros.mp4", bytes(4096)) and None),
    Case("source is a cut mp4 (no index)", cli("--source", "cut.mp4"), ("cut.mp4", "expected a video file"),
         setup=lambda e: _write(e.root / "cut.mp4", e.video.read_bytes()[: e.video.stat().st_size // 2]) and None),
    Case("folder without images", cli("--source", "empty"), ("--source empty", "no images"),
         setup=lambda e: (e.root / "empty").mkdir()),
    Case("checkpoint empty", cli("--source", "in.mp4", "--checkpoint", "m.pt"), ("m.pt", "empty (0 bytes)", "expected"),
         setup=lambda e: _write(e.root / "m.pt", b"") and None),
    Case("checkpoint is text", cli("--source", "in.mp4", "--checkpoint", "m.pt"), ("m.pt", "text file", "expected"),
         setup=lambda e: _write(e.root / "m.pt", b"version https://git-lfs.github.com/spec/v1\n") and None),
    Case("checkpoint is random bytes", cli("--source", "in.mp4", "--checkpoint", "m.pt"),
         ("m.pt", "unrecognised data", "expected"),
         setup=lambda e: _write(e.root / "m.pt", bytes(np.random.default_rng(1).integers(1, 127, 3000, dtype=np.uint8) | 0x80)) and None),
    Case("checkpoint pickles code", cli("--source", "in.mp4", "--checkpoint", "evil.pt"),
         ("evil.pt", "safe load refuses"), absent=("weights_only",), setup=_pickled_object),
    # -- credentials ----------------------------------------------------------------------------------
    Case("stream password, nothing answers", cli("--source", f"rtsp://admin:{SECRET}@127.0.0.1:9/x"),
         ("rtsp://admin:***@127.0.0.1:9/x", "no stream answered")),
    Case("stream password, bad scheme", cli("--source", f"ftp://admin:{SECRET}@host/x"), ("ftp://admin:***@host/x", "'ftp'")),
]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fast_checkpoint(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("clip") / "in.mp4", num_frames=8, width=96, height=64)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` → a hash of its content (folders → ``dir``)."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "special"
        for p in sorted(root.rglob("*"))
    }


def run_cli(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main(args)`` → (exit code, stdout + stderr at the file-descriptor level: FFmpeg's own lines too)."""
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse errors
        code = int(exit_.code or 0)
    out, err = capfd.readouterr()
    return code, out + err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, checkpoint: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    if case.skip is not None and (reason := case.skip()):
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = tmp_path / "in.mp4"
    video.write_bytes(clip.read_bytes())
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((64, 96, 3), 40 * i, np.uint8))
    env = Env(root=tmp_path, checkpoint=checkpoint, video=video, folder=folder)
    if case.setup is not None:
        case.setup(env)
    before = snapshot(tmp_path)
    code, output = run_cli(case.args(env), capfd)
    assert code == case.code, output
    message = "\n".join(line for line in output.splitlines() if "error" in line)  # not the usage text
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for fragment in case.absent:
        assert fragment not in message, f"{fragment!r} in {message!r}"
    assert "Traceback" not in output and SECRET not in output, output
    assert snapshot(tmp_path) == before, "files were created, changed or removed"
