"""Frame sizes: one convention, ``(height, width)`` like numpy shapes, models and engine.

OpenCV calls want ``(width, height)``; :attr:`Size.wh` gives that, so the order is flipped in one
named place and nowhere by hand. ``app/sources.py`` (``FrameSource.frame_size``) and
``app/outputs.py`` (``VideoOutput``) still speak OpenCV's ``(width, height)``; :meth:`Size.from_wh`
and :attr:`Size.wh` are the crossings.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Size(NamedTuple):
    """A frame size, ``(height, width)`` in pixels."""

    height: int
    width: int

    @classmethod
    def of(cls, image: np.ndarray) -> Size:
        """The size of an image (``H×W`` or ``H×W×C`` array)."""
        return cls(int(image.shape[0]), int(image.shape[1]))

    @classmethod
    def from_wh(cls, size: tuple[int, int]) -> Size:
        """From OpenCV's ``(width, height)`` order."""
        return cls(int(size[1]), int(size[0]))

    @property
    def wh(self) -> tuple[int, int]:
        """``(width, height)``, the order OpenCV's ``resize``/``VideoWriter`` expect."""
        return (self.width, self.height)
