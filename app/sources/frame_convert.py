"""Every source's frames in one form, converted in one place: 3-channel BGR ``uint8``.

The model, the overlay and the writers take BGR ``uint8`` frames. Image folders, cameras and GStreamer
pipelines can give other pictures: a 16-bit PNG export, an RGBA screenshot, a grey or ``Y16`` medical
camera. :func:`to_bgr8` converts whatever has one obvious conversion and says what it did (the source
notes each kind once in the log); a picture with none raises :class:`UnsupportedFrame`, naming what it
is and what was expected, and the source skips and counts that frame.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The conversions :func:`to_bgr8` makes, as named in the log.
SCALED_16_BIT = "16-bit, scaled to 8-bit"
GREY_TO_BGR = "grey, repeated into 3 BGR channels"
ALPHA_DROPPED = "with an alpha channel, alpha dropped"


class UnsupportedFrame(ValueError):
    """A decoded picture with no obvious conversion to BGR ``uint8``; the message says what it is."""


def describe(image: np.ndarray) -> str:
    """``"uint16 64x96x4"``: a picture's pixel type and shape, for messages."""
    return f"{image.dtype} {'x'.join(str(side) for side in image.shape)}"


def to_bgr8(image: object) -> tuple[np.ndarray, tuple[str, ...]]:
    """``image`` as a BGR ``uint8`` ``H×W×3`` array, and the conversions made (empty when none were needed).

    Accepted: ``uint8`` or ``uint16`` pixels (16-bit is scaled, 65535 → 255), with 1 (grey), 3 (BGR) or
    4 (BGRA: alpha dropped) channels. Anything else raises :class:`UnsupportedFrame`.
    """
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise UnsupportedFrame("an empty picture (expected an H×W×3 BGR image)")
    channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else 0
    if channels not in (1, 3, 4):
        raise UnsupportedFrame(f"{describe(image)} (expected 1 grey, 3 BGR or 4 BGRA channels)")
    if image.dtype not in (np.uint8, np.uint16):
        raise UnsupportedFrame(f"{describe(image)} pixels (expected 8- or 16-bit unsigned integers)")
    made: list[str] = []
    if image.dtype == np.uint16:
        image = cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)
        made.append(SCALED_16_BIT)
    if channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        made.append(GREY_TO_BGR)
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        made.append(ALPHA_DROPPED)
    return image, tuple(made)


def png_has_alpha(data: bytes) -> bool:
    """Whether a PNG's first bytes declare an alpha channel (grey+alpha or RGBA colour type in ``IHDR``).

    OpenCV drops the alpha channel when it decodes to colour; this tells the source to say so.
    """
    return len(data) >= 26 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[25] in (4, 6)
