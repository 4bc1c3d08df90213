"""Natural sort order: digit runs compare as numbers (``frame9`` before ``frame10``)."""

from __future__ import annotations

import re
from typing import Any


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key comparing digit runs numerically: ``frame9`` < ``frame10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)
