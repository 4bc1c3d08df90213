"""A machine-speed probe printed beside each issue-21 bench run: this VM's load average does not show
other tenants of its host, whose use slowed the same code 2–5-fold at times during these runs.

``python docs/benchmarks/issue21/probe.py``: two timings on one core (the best of five), in ms: a fixed
pure-Python loop (``loop``, ~70 ms on a quiet host) and a memory-bound OpenCV step, a 3840×2160 frame
blurred with a 9×9 box (``memory``).
"""

from __future__ import annotations

import time

import cv2
import numpy as np


def _best_ms(call: object, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def _loop() -> int:
    total = 0
    for value in range(1_000_000):
        total += value
    return total


def main() -> None:
    """Print ``loop MS memory MS``."""
    cv2.setNumThreads(1)
    frame = np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    memory = _best_ms(lambda: cv2.blur(frame, (9, 9)))
    print(f"loop {_best_ms(_loop):.0f} memory {memory:.1f}")


if __name__ == "__main__":
    main()
