"""The built-in live source: spec parsing, the latest-frame-wins slot, counts, drops and timestamps (no timing asserts)."""

from __future__ import annotations

import numpy as np
import pytest

from app.size import Size
from app.sources.live import LatestFrameSlot, LiveFrame, LiveSource, LiveSpec, parse_live_spec, pattern_frames, scene_frames


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1080p60", LiveSpec(1920, 1080, 60.0)),
        ("720p60", LiveSpec(1280, 720, 60.0)),
        ("720p@50", LiveSpec(1280, 720, 50.0)),
        ("1080p", LiveSpec(1920, 1080, 60.0)),
        ("640x360@30", LiveSpec(640, 360, 30.0)),
        ("64X48@59.94", LiveSpec(64, 48, 59.94)),
        ("320x240", LiveSpec(320, 240, 60.0)),
    ],
)
def test_parse_live_spec(text: str, expected: LiveSpec) -> None:
    assert parse_live_spec(text) == expected


@pytest.mark.parametrize("text", ["", "1080", "999p60", "1080p0", "8x8@60", "1920x1080@", "hd"])
def test_parse_live_spec_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_live_spec(text)


def test_label() -> None:
    assert parse_live_spec("1080p60").label == "1920x1080@60"


def _frame(index: int) -> LiveFrame:
    return LiveFrame(index, np.zeros((2, 2, 3), np.uint8), index)


def test_slot_keeps_only_the_newest_and_counts_drops() -> None:
    slot = LatestFrameSlot()
    assert slot.put(_frame(0)) is False
    assert slot.put(_frame(1)) is True
    assert slot.put(_frame(2)) is True
    item = slot.take(0)
    assert item is not None and item.index == 2
    assert (slot.dropped, slot.taken) == (2, 1)
    assert slot.take(0) is None  # empty, not closed: time-out
    slot.put(_frame(3))
    slot.close()
    last = slot.take(None)
    assert last is not None and last.index == 3  # what was left is still delivered after close
    assert slot.take(None) is None  # closed and empty: returns at once


def _small_source(**kwargs: object) -> LiveSource:
    spec = LiveSpec(32, 24, 1000.0)
    frames = pattern_frames(32, 24, 3)
    return LiveSource(spec, frames=frames, **kwargs)  # type: ignore[arg-type]


def test_unread_source_keeps_only_the_last_frame() -> None:
    source = _small_source(max_frames=20)
    source.start()
    source.join(10)
    assert source.emitted == 20
    assert not source.ended  # the last frame still waits in the slot
    frame = source.read(0)
    assert frame is not None and frame.index == 19
    assert source.dropped == 19 and source.taken == 1
    assert source.read(0) is None
    assert source.ended


def test_every_emitted_frame_is_taken_or_dropped_and_timestamps_increase() -> None:
    source = _small_source(max_frames=200)
    seen: list[LiveFrame] = []
    with source:
        while (frame := source.read(5.0)) is not None:
            seen.append(frame)
    assert source.emitted == 200
    assert source.taken == len(seen)
    assert source.taken + source.dropped == source.emitted
    indices = [f.index for f in seen]
    stamps = [f.capture_ns for f in seen]
    assert indices == sorted(set(indices))  # strictly increasing: newest wins, never an old frame after a new one
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    counts = source.counts()
    assert counts["emitted"] == 200 and counts["dropped"] == source.dropped


def test_frames_cycle_through_the_set_and_are_copies_by_default() -> None:
    spec = LiveSpec(16, 16, 1000.0)
    frames = [np.full((16, 16, 3), k, np.uint8) for k in range(3)]
    source = LiveSource(spec, frames=frames, max_frames=1)
    source.start()
    source.join(10)
    frame = source.read(0)
    assert frame is not None and frame.index == 0
    frame.image[:] = 255  # a consumer drawing in place must not change the pre-rendered set
    assert source._frames[0].max() == 0
    assert (frame.image.shape, frame.image.dtype) == ((16, 16, 3), np.uint8)


def test_views_without_copy_are_read_only() -> None:
    source = _small_source(max_frames=1, copy=False)
    source.start()
    source.join(10)
    frame = source.read(0)
    assert frame is not None
    with pytest.raises(ValueError):
        frame.image[0, 0, 0] = 1


def test_stop_ends_an_endless_source() -> None:
    source = _small_source()
    source.start()
    assert source.read(5.0) is not None
    source.stop()
    source.read(0)  # drain what is left
    assert source.read(0) is None
    assert source.ended
    assert source.taken + source.dropped == source.emitted


def test_bad_frames_are_refused() -> None:
    spec = LiveSpec(32, 24, 60.0)
    with pytest.raises(ValueError, match="uint8 24x32x3"):
        LiveSource(spec, frames=[np.zeros((24, 32), np.uint8)])
    with pytest.raises(ValueError, match="at least one frame"):
        LiveSource(spec, frames=[])
    with pytest.raises(ValueError, match="generator"):
        LiveSource(spec, generator="video")


def test_generated_frame_sets_have_the_stated_size_and_move() -> None:
    for frames in (pattern_frames(64, 48, 3), scene_frames(64, 48, 2)):
        assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
        assert not np.array_equal(frames[0], frames[1])
    source = LiveSource(LiveSpec(64, 48, 60.0), generator="pattern", count=2)
    assert source.frame_size == Size(height=48, width=64) and source.fps == 60.0 and source.live
