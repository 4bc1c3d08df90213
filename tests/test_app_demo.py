"""The demo/bench video cache: generate-once behaviour (the location rules: test_engine_export::test_cache_location_env)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from app.demo import generated_video


def test_generated_video_is_made_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path))
    first = generated_video(8, 64, 48, generator="shapes")
    assert first.parent == tmp_path and first.is_file()
    stamp = first.stat().st_mtime_ns
    assert generated_video(8, 64, 48, generator="shapes") == first and first.stat().st_mtime_ns == stamp
    capture = cv2.VideoCapture(str(first))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (64, 48)
    with pytest.raises(ValueError, match="generator"):
        generated_video(8, 64, 48, generator="nope")
