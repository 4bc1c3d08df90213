"""Bad inputs to ``python -m app``, and sources a user will bring: two tables a reviewer can extend.

Each :class:`Case` builds real files in a fresh folder (real mp4s, real corrupt files, real clashing
paths), runs the CLI in-process and asserts: the exit code; a message naming the value and the
option; no traceback; no password; and that nothing in the folder changed (no partial output, the
source untouched). Add a row to ``CASES`` to cover a new bad input.

Each :class:`Works` row (``WORKS``) writes a source a user may bring (10-bit and HEVC video, a rotated
phone video, a variable frame rate, 4K, grey, odd sizes, 16-bit and RGBA PNGs, one frame) and asserts
that it plays: see the comment above ``WORKS``'s helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import decode_video

from app.__main__ import main
from app.core.stage import Frame
from app.outputs.encoders import encoder_opens
from app.sources.capture import Capture
from synthetic.shapes import render_frame, write_test_video

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


def _float_tiffs(env: Env) -> None:
    (env.root / "hdr").mkdir()
    for i in range(2):
        cv2.imwrite(str(env.root / "hdr" / f"{i}.tif"), np.full((48, 64, 3), 0.5, np.float32))


def _audio_only(env: Env) -> None:
    with av.open(str(env.root / "voice.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(3):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


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
    Case("threshold of 1", cli("--source", "in.mp4", "--threshold", "1"), ("--threshold: 1:", "between 0 and 1, both excluded")),
    Case("threshold not a number", cli("--source", "in.mp4", "--threshold", "high"), ("--threshold", "'high' is not a number")),
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
    Case("folder of float32 TIFFs", cli("--source", "hdr"), ("image folder hdr", "0.tif", "float32", "expected 8- or 16-bit"),
         setup=_float_tiffs),
    Case("audio-only file", cli("--source", "voice.m4a"), ("voice.m4a", "no video stream", "expected a video file"),
         setup=_audio_only),
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


@pytest.fixture
def env(checkpoint: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """A fresh working directory (no display) holding ``in.mp4`` and the image folder ``frames``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = tmp_path / "in.mp4"
    video.write_bytes(clip.read_bytes())
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((64, 96, 3), 40 * i, np.uint8))
    return Env(root=tmp_path, checkpoint=checkpoint, video=video, folder=folder)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, env: Env, capfd) -> None:
    if case.skip is not None and (reason := case.skip()):
        pytest.skip(reason)
    tmp_path = env.root
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


# == Sources a user will bring: each one works ===========================================================
#
# Each :class:`Works` row writes a real file or folder (videos encoded by PyAV, in the pixel format,
# codec, size, rotation or timing of the case), runs the CLI on it and asserts: exit 0; every frame
# rendered (or, with --realtime, dropped as late/stale and counted); the frame size the app reports and
# the output video's size are the size as displayed; the frames reaching the model are BGR uint8 and
# look like the pictures as displayed; nothing but the asked-for outputs left in the folder.

MARKER_BGR = (255, 40, 0)  #: a blue block in the top-left corner of every stored picture: where it lands tells the orientation


def picture(index: int, height: int, width: int) -> np.ndarray:
    """A stored picture: the shapes test frame with the marker in its top-left corner."""
    image = render_frame(index, width, height)
    image[: height // 4, : width // 4] = MARKER_BGR
    return image


def marker_corner(image: np.ndarray) -> str:
    """The corner of ``image`` where the marker is (the bluest corner patch)."""
    h, w = image.shape[0] // 8, image.shape[1] // 8
    patches = {
        "top-left": image[:h, :w], "top-right": image[:h, -w:], "bottom-left": image[-h:, :w], "bottom-right": image[-h:, -w:],
    }  # fmt: skip
    return max(patches, key=lambda corner: float(patches[corner][..., 0].mean()) - float(patches[corner][..., 2].mean()))


def encode_video(
    path: Path, pictures: list[np.ndarray], codec: str = "libx264", pix_fmt: str = "yuv420p",
    rotate: int = 0, pts_ms: list[int] | None = None,
) -> None:  # fmt: skip
    """Encode BGR ``pictures`` with PyAV: ``rotate`` is the phone's tag (degrees clockwise to display), ``pts_ms``
    irregular presentation times (a variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = pictures[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.codec_context.options = {"crf": "8"}  # near-lossless: the decoded frames are compared with the pictures
        if rotate:
            stream.set_display_rotation(-rotate)  # FFmpeg's display matrix turns counter-clockwise
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index, image in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def video(name: str, count: int, height: int, width: int, **encode: object) -> Callable[[Path], tuple[str, list[np.ndarray]]]:
    """A case's source: ``count`` pictures encoded into ``name``; shown as stored (a rotated one turned clockwise)."""

    def make(root: Path) -> tuple[str, list[np.ndarray]]:
        stored = [picture(i, height, width) for i in range(count)]
        encode_video(root / name, stored, **encode)  # type: ignore[arg-type]
        turn = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}.get(int(encode.get("rotate", 0)))
        shown = [image if turn is None else cv2.rotate(image, turn) for image in stored]
        if encode.get("pix_fmt") == "gray":
            shown = [cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for image in shown]
        return name, shown

    return make


def deep_png_folder(root: Path) -> tuple[str, list[np.ndarray]]:
    """PNGs as a user may export them: 16-bit BGR, 16-bit RGBA, 8-bit RGBA, 16-bit grey; shown as 8-bit BGR."""
    folder = root / "deep"
    folder.mkdir()
    base = picture(0, 48, 64).astype(np.uint16) * 257  # 8-bit values v stored as 16-bit v * 257: exact both ways
    alpha = np.full((48, 64, 1), 20000, np.uint16)
    stored = [base, np.concatenate([base, alpha], axis=2), np.concatenate([base, alpha], axis=2) // 257, base[..., 1]]
    for i, image in enumerate(stored):
        cv2.imwrite(str(folder / f"{i}.png"), image.astype(np.uint8) if i == 2 else image)
    shown = (base // 257).astype(np.uint8)
    return "deep", [shown, shown, shown, cv2.cvtColor(shown[..., 1], cv2.COLOR_GRAY2BGR)]


def no_display_matrix() -> str | None:
    """A skip reason when this PyAV cannot tag a stream's rotation."""
    return None if hasattr(av.video.stream.VideoStream, "set_display_rotation") else "this PyAV cannot write a display matrix"


def encoder_lacks(codec: str, pix_fmt: str) -> Callable[[], str | None]:
    """A skip reason when this PyAV wheel cannot encode ``pix_fmt`` with ``codec``."""

    def reason() -> str | None:
        if codec not in av.codecs_available:
            return f"this PyAV wheel has no {codec} encoder"
        formats = {f.name for f in av.Codec(codec, "w").video_formats or ()}
        return None if pix_fmt in formats else f"this PyAV wheel's {codec} cannot encode {pix_fmt} (only {sorted(formats)})"

    return reason


@dataclass
class Ran:
    """What a run left: the console and log, the stats JSON, the frames captured for the model, the decoded output."""

    output: str
    stats: dict
    captured: list[np.ndarray]
    video: list[np.ndarray]
    shown: list[np.ndarray]  #: the source's pictures as they should be displayed

    @property
    def accounting(self) -> dict:
        return self.stats["summary"]["frames_accounting"]


@dataclass
class Works:
    """A source that must work: ``make(root)`` writes it and returns (``--source``, its pictures as displayed)."""

    name: str
    make: Callable[[Path], tuple[str, list[np.ndarray]]]
    args: tuple[str, ...] = ()
    check: Callable[[Ran], None] | None = None
    skip: Callable[[], str | None] | None = None
    slow: bool = False
    output_size: tuple[int, int] | None = None  #: (height, width) of the output video when not the source's
    tolerance: float = 8.0  #: mean absolute difference allowed between a captured frame and its picture (4:2:0, lossy; a
    #: wrong turn, channel order or bit depth is far above it)


def marker_lands(corner: str) -> Callable[[Ran], None]:
    """The stored top-left marker is in ``corner`` of what the model gets and of the output (rotate=90: top-right)."""

    def check(ran: Ran) -> None:
        assert marker_corner(ran.captured[0]) == corner and marker_corner(ran.video[0]) == corner

    return check


def grey_in_three_channels(ran: Ran) -> None:
    for frame in ran.captured:
        np.testing.assert_array_equal(frame[..., 0], frame[..., 2])


VFR_PTS_MS = [0, 40, 300, 340, 800, 840]  #: irregular presentation times: the average is no frame's period


def paced_by_timestamps(ran: Ran) -> None:
    """--realtime follows the frames' own times: no frame captured before its time, none much after."""
    accounting = ran.accounting
    skipped = accounting["skipped"]
    # Stale frames (replaced before inference) are captured but not rendered: counted once, as stale.
    assert set(skipped) <= {"late", "stale"}
    assert accounting["rendered"] + skipped.get("late", 0) + skipped.get("stale", 0) == len(VFR_PTS_MS), accounting
    assert accounting["truncated"] is False and accounting["header_frames"] in (6, None)
    times = {f["index"]: f["capture_s"] for f in ran.stats["frames"]}
    first = min(times)
    for index, captured in times.items():
        since = captured - times[first]
        assert since >= (VFR_PTS_MS[index] - VFR_PTS_MS[first]) / 1000 - 0.005, (index, since)
        assert since <= (VFR_PTS_MS[index] - VFR_PTS_MS[first]) / 1000 + 2.0, (index, since)


JUMP_PTS_MS = [0, 40, 60_000, 60_040]  #: a minute's jump (a broken timestamp, a paused recording)


def jump_not_waited_out(ran: Ran) -> None:
    """--realtime does not wait a minute for the frame after a jump: pacing restarts from it."""
    skipped = ran.accounting["skipped"]
    assert ran.accounting["rendered"] + skipped.get("late", 0) + skipped.get("stale", 0) == len(JUMP_PTS_MS)
    captures = [f["capture_s"] for f in ran.stats["frames"]]
    assert max(captures) - min(captures) < 10.0


def deep_pngs_noted(ran: Ran) -> None:
    for note in ("16-bit, scaled to 8-bit", "alpha dropped", "grey, repeated into 3 BGR channels"):
        assert note in ran.output, f"{note!r} not noted in {ran.output!r}"


UPRIGHT = ("--alpha", "0", "--no-contours")  #: the output shows the source picture as the app got it

WORKS = [
    Works("H.264 High 10 (yuv420p10le)", video("h10.mp4", 3, 64, 96, pix_fmt="yuv420p10le"),
          skip=encoder_lacks("libx264", "yuv420p10le")),
    Works("HEVC 8-bit", video("hevc.mp4", 3, 64, 96, codec="libx265"), skip=encoder_lacks("libx265", "yuv420p")),
    Works("HEVC Main 10", video("hevc10.mkv", 3, 64, 96, codec="libx265", pix_fmt="yuv420p10le"),
          skip=encoder_lacks("libx265", "yuv420p10le")),
    Works("phone video 1280x720 tagged rotate=90", video("phone.mp4", 2, 720, 1280, rotate=90), UPRIGHT, marker_lands("top-right"),
          skip=no_display_matrix),
    Works("video tagged rotate=180", video("r180.mp4", 2, 72, 128, rotate=180), UPRIGHT, marker_lands("bottom-right"),
          skip=no_display_matrix),
    Works("video tagged rotate=270", video("r270.mp4", 2, 72, 128, rotate=270), UPRIGHT, marker_lands("bottom-left"),
          skip=no_display_matrix),
    Works("variable frame rate mp4, --realtime", video("vfr.mp4", 6, 64, 96, pts_ms=VFR_PTS_MS), ("--realtime",),
          paced_by_timestamps),
    Works("variable frame rate mkv (no frame count), --realtime", video("vfr.mkv", 6, 64, 96, pts_ms=VFR_PTS_MS),
          ("--realtime",), paced_by_timestamps),
    Works("timestamps jumping a minute ahead, --realtime", video("jump.mp4", 4, 64, 96, pts_ms=JUMP_PTS_MS),
          ("--realtime",), jump_not_waited_out),
    Works("4K 3840x2160", video("4k.mp4", 3, 2160, 3840), slow=True),
    Works("grey video (gray pix_fmt)", video("grey.mp4", 3, 64, 96, pix_fmt="gray"), check=grey_in_three_channels),
    Works("odd size 1918x1078", video("odd.mp4", 2, 1078, 1918)),
    Works("odd size 191x107 (H.264 output padded to even)", video("odd.mp4", 2, 107, 191, pix_fmt="yuv444p"),
          output_size=(108, 192)),
    Works("image folder: 16-bit, RGBA and grey PNGs", deep_png_folder, check=deep_pngs_noted, tolerance=0.0),
    Works("one-frame video", video("one.mp4", 1, 64, 96)),
]  # fmt: skip


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Every frame the capture stage hands on towards the model, as it is handed on."""
    seen: list[np.ndarray] = []
    read = Capture.read

    def spy(self: Capture, stop: threading.Event) -> Frame | None:
        frame = read(self, stop)
        if frame is not None:
            seen.append(frame.image.copy())
        return frame

    monkeypatch.setattr(Capture, "read", spy)
    return seen


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in WORKS]
)
def test_source_works(case: Works, env: Env, captured: list[np.ndarray], capfd, caplog) -> None:
    if case.skip is not None and (reason := case.skip()):
        pytest.skip(reason)
    source, shown = case.make(env.root)
    before = set(os.listdir(env.root))
    code, output = run_cli(cli("--source", source, "--output", "o.mp4", "--stats", "s.json", *case.args)(env), capfd)
    assert code == 0 and "Traceback" not in output, output
    assert set(os.listdir(env.root)) == before | {"o.mp4", "s.json"}, "only the outputs asked for are left"
    ran = Ran(output + caplog.text, json.loads((env.root / "s.json").read_text()), captured, decode_video(env.root / "o.mp4"), shown)
    height, width = shown[0].shape[:2]
    assert ran.stats["summary"]["frame_size"] == [width, height]
    if "--realtime" not in case.args:
        assert ran.accounting["rendered"] == len(shown) and ran.accounting["skipped_total"] == 0, ran.accounting
    assert len(ran.video) == ran.accounting["rendered"] and len(captured) == ran.accounting["captured"]
    assert all(f.shape == (height, width, 3) and f.dtype == np.uint8 for f in captured)
    difference = np.abs(captured[0].astype(float) - shown[0]).mean()
    assert difference <= case.tolerance, f"the model gets the picture as displayed: mean difference {difference:.2f}"
    out_height, out_width = case.output_size or (height, width)
    assert all(f.shape == (out_height, out_width, 3) for f in ran.video)
    if case.check is not None:
        case.check(ran)
