"""The window's keys, in one table: the HUD legend and the ``--help`` text are both made from it."""

from __future__ import annotations

#: ``(key, short label for the HUD, longer label for --help)``
KEYS: tuple[tuple[str, str, str], ...] = (
    ("space", "pause", "pause"),
    ("o", "overlay", "overlay on/off"),
    ("m", "mask", "mask-only view"),
    ("c", "contours", "contours on/off"),
    ("s", "screenshot", "screenshot"),
    ("q/Esc", "quit", "quit"),
)

#: Drawn at the bottom of the HUD.
KEY_LEGEND = "  ".join(f"{key} {short}" for key, short, _ in KEYS)
#: Printed in ``python -m app --help``.
KEYS_HELP = ", ".join(f"{key} {long}" for key, _, long in KEYS)
