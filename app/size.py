"""Frame sizes: one convention, ``(height, width)`` like numpy shapes, models and engine.

OpenCV calls want ``(width, height)``; :attr:`Size.wh` gives that, so the order is flipped in one
named place and nowhere by hand. Sources (``FrameSource.frame_size``), the video writer
(``VideoOutput``) and its encoders take and give :class:`Size`; :meth:`Size.from_wh` turns an OpenCV
``(width, height)`` pair into one, and refuses a :class:`Size` (that would swap its sides).
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
        """From OpenCV's ``(width, height)`` order (a :class:`Size` is already ``(height, width)``: refused)."""
        if isinstance(size, Size):
            raise TypeError(f"Size.from_wh({size!r}): already a Size (height, width); use it as it is")
        return cls(int(size[1]), int(size[0]))

    @property
    def wh(self) -> tuple[int, int]:
        """``(width, height)``, the order OpenCV's ``resize``/``VideoWriter`` expect."""
        return (self.width, self.height)

    @classmethod
    def require(cls, size: object, what: str) -> Size:
        """``size`` if it is a :class:`Size`; a bare tuple is refused, as its order cannot be told."""
        if not isinstance(size, Size):
            raise TypeError(f"{what}: expected app.size.Size(height, width), got {size!r}")
        return size
