"""``HEIGHTxWIDTH`` size arguments, parsed once for training and the engine CLIs (sizes are (height, width))."""

from __future__ import annotations

import argparse

MIN_SIDE = 8


class SizeError(argparse.ArgumentTypeError, ValueError):
    """A size argument is malformed or too small (argparse shows the message; callers may catch ``ValueError``)."""


def parse_size(text: str) -> tuple[int, int]:
    """``"256x320"`` → ``(256, 320)`` (height × width); :class:`SizeError` unless both sides are ≥ 8."""
    try:
        height, width = (int(v) for v in text.lower().strip().split("x"))
    except ValueError:
        raise SizeError(f"size {text.strip()!r} must look like HEIGHTxWIDTH, e.g. 256x320") from None
    if height < MIN_SIDE or width < MIN_SIDE:
        raise SizeError(f"size {text.strip()!r} is too small; expected at least {MIN_SIDE}x{MIN_SIDE}")
    return height, width


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"256x320,538x701"`` → ``[(256, 320), (538, 701)]`` (each item as :func:`parse_size`)."""
    return [parse_size(item) for item in text.split(",")]
