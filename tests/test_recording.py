"""Crash-safe recordings (app/outputs/recording.py): a partial that plays while it is written, a faststart remux on a clean
stop, a partial left by a crash recovered at the next start without overwriting anything; stats snapshots; masks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import decode_video, fast_checkpoint
from test_app_safety import app_env, codec_of, headless  # noqa: F401 - headless is a fixture

from app.__main__ import main
from app.core.stats import PeriodicWriter
from app.errors import SetupError
from app.outputs.paths import check_mask_dir
from app.outputs.recording import partial_path, recover_partial
from app.outputs.writers import MaskWriter, VideoOutput
from app.size import Size
from synthetic.shapes import render_frame, write_test_video

SIZE = Size(height=64, width=96)
FPS = 25.0


def frames(count: int) -> list[np.ndarray]:
    return [render_frame(index, SIZE.width, SIZE.height) for index in range(count)]


def top_level_boxes(path: Path) -> list[str]:
    """The MP4 boxes at the top of ``path`` in file order (``moov`` before ``mdat``: faststart)."""
    boxes, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0] if size == 1 else size
        boxes.append(kind.decode("latin-1"))
        offset += size if size else len(data)
    return boxes


def pyav_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def crashed_partial(folder: Path, count: int, codec: str = "auto", name: str = "rec.mp4") -> Path:
    """What ``kill -9`` leaves: a copy of a partial taken while its run was still recording (``count`` frames sent)."""
    live = VideoOutput(folder / "live" / name, FPS, SIZE, codec=codec, threaded=False)
    for frame in frames(count):
        live.write(frame)
    folder.mkdir(parents=True, exist_ok=True)
    left = shutil.copyfile(partial_path(live.path), partial_path(folder / name))
    live.close()
    return Path(left)


@pytest.mark.parametrize(("codec", "name", "expected"), [("auto", "rec.mp4", "h264"), ("mp4v", "rec.mp4", "mpeg4"),
                                                         ("auto", "rec.avi", "mjpeg"), ("auto", "rec.mkv", "h264")])  # fmt: skip
def test_partial_plays_while_recording_and_close_remuxes_it_faststart(codec: str, name: str, expected: str, tmp_path: Path) -> None:
    out = VideoOutput(tmp_path / name, FPS, SIZE, codec=codec, threaded=False)
    assert out.crash_safe
    for frame in frames(60):  # 2.4 s: fragments of at most 0.5 s, a keyframe every second
        out.write(frame)
    partial = tmp_path / "rec.partial.mp4"
    assert [p.name for p in tmp_path.iterdir()] == [partial.name]  # visible, beside the output, nothing else
    assert 60 - FPS <= pyav_frames(partial) < 60 and len(decode_video(partial)) == pyav_frames(partial)  # still open
    out.close()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # the partial is gone, no temporary file left
    assert codec_of(tmp_path / name) == (expected, 60) and len(decode_video(tmp_path / name)) == 60
    if name.endswith(".mp4"):
        boxes = top_level_boxes(tmp_path / name)
        assert boxes.index("moov") < boxes.index("mdat") and "moof" not in boxes  # faststart, not fragmented
    with av.open(str(tmp_path / name)) as container:
        assert container.streams.video[0].average_rate == FPS


def test_leftover_partial_is_recovered_at_the_next_start_and_nothing_is_overwritten(tmp_path: Path, caplog) -> None:
    left = crashed_partial(tmp_path, 60)
    playable = pyav_frames(left)
    assert playable >= 60 - FPS
    os.utime(left, (1_700_000_000, 1_700_000_000))  # when the crashed run last wrote: the name of the recovered file
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(1_700_000_000))
    taken = tmp_path / f"rec.recovered-{stamp}.mp4"
    taken.write_bytes(b"an earlier recovery")
    (tmp_path / "rec.mp4").write_bytes(b"an earlier recording")
    with caplog.at_level(logging.WARNING, logger="app.outputs.recording"):
        out = VideoOutput(tmp_path / "rec.mp4", FPS, SIZE)
    recovered = tmp_path / f"rec.recovered-{stamp}-2.mp4"
    assert out.recovered == recovered and not left.exists()
    assert codec_of(recovered) == ("h264", playable) and top_level_boxes(recovered).index("moov") < top_level_boxes(recovered).index("mdat")
    assert taken.read_bytes() == b"an earlier recovery" and (tmp_path / "rec.mp4").read_bytes() == b"an earlier recording"
    message = " ".join(r.getMessage() for r in caplog.records)
    assert str(left) in message and str(recovered) in message and f"{playable} frames" in message
    out.write(frames(1)[0])
    out.close()
    assert codec_of(tmp_path / "rec.mp4") == ("h264", 1)


def test_a_frame_cut_short_by_the_crash_is_left_out_of_the_recovered_file(tmp_path: Path) -> None:
    left = crashed_partial(tmp_path, 60)
    whole = pyav_frames(left)
    left.write_bytes(left.read_bytes()[:-10])  # the crash came while the last fragment was written
    recovered = recover_partial(tmp_path / "rec.mp4")
    assert recovered is not None and codec_of(recovered) == ("h264", whole - 1)
    with av.open(str(recovered)) as container:
        assert sum(1 for packet in container.demux(container.streams.video[0]) if packet.dts is not None) == whole - 1


def test_without_pyav_opencv_writes_a_hidden_file_renamed_at_the_end(tmp_path: Path, monkeypatch) -> None:
    import app.outputs.encoders

    monkeypatch.setattr(app.outputs.encoders, "have_pyav", lambda: False)
    out = VideoOutput(tmp_path / "rec.mp4", FPS, SIZE, codec="mp4v", threaded=False)
    assert not out.crash_safe
    out.write(frames(1)[0])
    assert [p.name.startswith(".rec.") for p in tmp_path.iterdir()] == [True]  # not crash-safe: documented
    out.close()
    assert [p.name for p in tmp_path.iterdir()] == ["rec.mp4"] and len(decode_video(tmp_path / "rec.mp4")) == 1


def test_a_partial_with_no_frame_is_removed_and_an_unreadable_one_kept(tmp_path: Path, caplog) -> None:
    empty = crashed_partial(tmp_path / "a", 3)  # less than a fragment: nothing but the header
    assert pyav_frames(empty) == 0
    assert recover_partial(tmp_path / "a" / "rec.mp4") is None and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["live"]
    garbage = partial_path(tmp_path / "b" / "rec.mp4")
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a video" * 100)
    damaged = recover_partial(tmp_path / "b" / "rec.mp4")
    assert damaged is not None and damaged.name.startswith("rec.damaged-") and damaged.read_bytes() == b"not a video" * 100
    assert "could not be finalised" in caplog.text and str(damaged) in caplog.text


def test_a_partial_being_written_by_a_running_process_is_refused(tmp_path: Path) -> None:
    out = VideoOutput(tmp_path / "rec.mp4", FPS, SIZE, threaded=False)
    out.write(frames(1)[0])  # the partial exists and is locked
    with pytest.raises(SetupError, match="rec.partial.mp4 is being written by another running process"):
        VideoOutput(tmp_path / "rec.mp4", FPS, SIZE)
    out.close()


def test_partial_recording_clashing_with_the_source_exits_2(headless: Path, capsys) -> None:  # noqa: F811
    source = write_test_video(headless / "rec.partial.mp4", num_frames=3, width=96, height=64)
    assert main(["--source", str(source), "--output", "rec.mp4", "--checkpoint", "missing.pt"]) == 2
    assert "partial recording" in capsys.readouterr().err and sorted(p.name for p in headless.iterdir()) == ["rec.partial.mp4"]


def test_stats_snapshots_are_written_while_running(tmp_path: Path) -> None:
    written: list[int] = []
    writer = PeriodicWriter(lambda: written.append(len(written)), interval_s=0.02).start()
    time.sleep(0.3)
    writer.stop()
    count = len(written)
    time.sleep(0.1)
    assert count >= 3 and len(written) == count and writer.written == count  # stopped for good


def test_masks_are_atomic_and_a_torn_leftover_is_cleared(tmp_path: Path) -> None:
    masks = MaskWriter(tmp_path / "m")
    masks.write(3, np.full((8, 8), 255, np.uint8))
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["000003.png"]  # no temporary file left
    (tmp_path / "m" / ".000004.png.part").write_bytes(b"\x89PNG torn")  # a crash while mask 4 was written
    with pytest.raises(SetupError, match="not empty"):
        check_mask_dir(tmp_path / "m", overwrite=False)
    again = MaskWriter(tmp_path / "m", overwrite=True)
    again.write(0, np.zeros((8, 8), np.uint8))
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["000000.png"]


@pytest.mark.slow  # about 40 s on 2 busy cores: two app start-ups, a few seconds of recording
def test_kill_9_leaves_a_playable_partial_that_the_next_run_recovers(tmp_path: Path) -> None:
    fps = 25
    checkpoint = fast_checkpoint(tmp_path)
    source = write_test_video(tmp_path / "in.mp4", num_frames=1500, width=128, height=96, fps=fps)
    command = [sys.executable, "-m", "app", "--source", str(source), "--checkpoint", str(checkpoint), "--output", "rec.mp4",
               "--stats", "s.json", "--window", "off"]  # fmt: skip
    log = tmp_path / "first-run.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([*command, "--realtime"], cwd=tmp_path, env=app_env(), stdout=sink, stderr=sink)
    stats, rendered, deadline = tmp_path / "s.json", 0, time.monotonic() + 120
    try:
        while rendered < 3 * fps and time.monotonic() < deadline and process.poll() is None:  # 3 s recorded
            time.sleep(0.2)
            rendered = json.loads(stats.read_text())["summary"]["frames"] if stats.exists() else 0
        assert process.poll() is None and rendered >= 3 * fps, log.read_text()
        seen = stats.stat().st_mtime_ns
        while stats.stat().st_mtime_ns == seen and time.monotonic() < deadline:  # kill right after a fresh snapshot
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    summary = json.loads(stats.read_text())["summary"]
    assert summary["complete"] is False and summary["frames"] >= 3 * fps, summary
    partial = tmp_path / "rec.partial.mp4"
    decoded = len(decode_video(partial))
    assert decoded >= summary["frames"] - 2 * fps, (decoded, summary["frames"])
    assert not (tmp_path / "rec.mp4").exists()
    again = subprocess.run([*command, "--max-frames", "5"], cwd=tmp_path, env=app_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    recovered = [p for p in tmp_path.iterdir() if p.name.startswith("rec.recovered-")]
    assert len(recovered) == 1 and "rec.partial.mp4" in again.stderr and recovered[0].name in again.stderr
    assert len(decode_video(recovered[0])) == decoded and codec_of(tmp_path / "rec.mp4") == ("h264", 5)
    print(f"kill -9: {summary['frames']} frames rendered at the last snapshot, {decoded} decoded from the partial")
