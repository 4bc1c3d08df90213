"""The OpenCV window (main thread only) and its keys (listed in :mod:`app.core.keys`).

The window reads rendered frames from a :class:`app.outputs.sinks.DisplaySink`, toggles the shared
:class:`app.core.overlay.ViewState`, and stops the pipeline through the small :class:`Controls` interface.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from app.core.keys import KEYS_HELP
from app.core.overlay import ViewState, draw_paused, no_signal_image
from app.outputs.sinks import DisplaySink

LOG = logging.getLogger(__name__)

WINDOW_TITLE = "surgical instrument segmentation"
__all__ = ["KEYS_HELP", "WINDOW_TITLE", "Controls", "Display", "display_available"]
_PROBE = "import cv2; cv2.namedWindow('probe'); cv2.waitKey(1); cv2.destroyAllWindows()"


def display_available(timeout_s: float = 10.0) -> bool:
    """Whether a window can be opened: ``DISPLAY``/``WAYLAND_DISPLAY`` is set and a probe window opens.

    The probe runs in a subprocess, because Qt aborts the whole process when it cannot reach a display.
    """
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class Controls(Protocol):
    """What the window may do to the pipeline (:class:`app.pipeline.Pipeline` provides it)."""

    def request_stop(self, reason: str) -> None:
        """Stop capturing and let the queued frames drain."""

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the pipeline has finished (within ``timeout`` seconds)."""


class Display:
    """Shows the frames of a display sink and applies key presses to the view state."""

    def __init__(
        self, feed: DisplaySink, view: ViewState, controls: Controls, screenshot_dir: Path, title: str = WINDOW_TITLE
    ) -> None:
        self.feed = feed
        self.view = view
        self.controls = controls
        self.screenshot_dir = screenshot_dir
        self.title = title
        self.last: np.ndarray | None = None
        self.screenshots: list[Path] = []
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        height, width = feed.size
        cv2.resizeWindow(title, min(width, 1280), min(height, 720) if width <= 1280 else int(height * 1280 / width))

    def loop(self) -> None:
        """Show frames until the pipeline finishes or the user quits (must run on the main thread)."""
        feed, controls = self.feed, self.controls
        shown_no_signal = False
        message = ""
        while True:
            image = feed.next_image(timeout=0.01)
            if image is None and feed.finished:
                break
            no_signal = feed.no_signal
            if no_signal is not None:
                if not shown_no_signal or message != no_signal:
                    message = no_signal
                    cv2.imshow(self.title, no_signal_image(feed.size, message))
                shown_no_signal = True
            elif image is not None:
                self.last = image
                started = time.perf_counter_ns()
                cv2.imshow(self.title, image)
                if feed.timer is not None:
                    feed.timer.record_since("display", started)
                shown_no_signal = False
            elif shown_no_signal and self.last is not None:
                cv2.imshow(self.title, self.last)
                shown_no_signal = False
            key = cv2.waitKey(1) & 0xFF
            if key != 0xFF and self.handle_key(key):
                controls.request_stop("quit key")
            elif self._closed_by_user():
                controls.request_stop("window closed")
            if controls.stopping and controls.wait(0):
                break

    def handle_key(self, key: int) -> bool:
        """Apply one key; ``True`` when it asks to quit."""
        view = self.view
        char = chr(key).lower() if key < 128 else ""
        if key == 27 or char == "q":
            return True
        if char == " ":
            view.paused = not view.paused
            if view.paused and self.last is not None:
                paused = self.last.copy()
                draw_paused(paused)
                cv2.imshow(self.title, paused)
        elif char == "o":
            view.overlay = not view.overlay
        elif char == "m":
            view.mask_only = not view.mask_only
        elif char == "c":
            view.contours = not view.contours
        elif char == "s":
            self.screenshot()
        return False

    def screenshot(self) -> Path | None:
        """Save the frame on screen (with overlay and HUD) as a PNG; returns its path."""
        if self.last is None:
            return None
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.screenshot_dir / f"screenshot-{time.strftime('%Y%m%d-%H%M%S')}-{len(self.screenshots):03d}.png"
        if cv2.imwrite(str(path), self.last):
            self.screenshots.append(path)
            print(f"screenshot: {path}", flush=True)
            return path
        LOG.error("could not write screenshot %s", path)
        return None

    def _closed_by_user(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        """Destroy the window."""
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
