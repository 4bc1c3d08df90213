"""The demo/bench video cache: location precedence and generate-once behaviour."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from app.demo import cache_dir, generated_video


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SURGSEG_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "surgical-seg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "surgical-seg"
    monkeypatch.setenv("SURGSEG_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"


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
