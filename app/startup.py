"""Ctrl-C or SIGTERM while ``python -m app`` starts up (importing torch, loading the model): one line, exit 130/143.

Installed before the heavy imports: a signal while importing exits at once (no file of ours is open);
once ``main()`` runs, it raises :class:`StartupInterrupted` so set-up code unwinds and cleans up (outputs
themselves are only created at the first frame). When the pipeline runs, its own handlers take over
and finalise the outputs.
"""

from __future__ import annotations

import os
import signal
import sys

#: ``128 + signal number``, as a shell reports a process ended by that signal.
EXIT_SIGINT = 128 + int(signal.SIGINT)
EXIT_SIGTERM = 128 + int(signal.SIGTERM)


class StartupInterrupted(BaseException):
    """SIGINT/SIGTERM during start-up, raised once :func:`raise_on_signal` was called; ``code`` is 130/143."""

    def __init__(self, signum: int) -> None:
        self.name = signal.Signals(signum).name
        self.code = 128 + signum
        super().__init__(f"{self.name}: interrupted during start-up, nothing written (exit {self.code})")


_raise = False


def _on_signal(signum: int, _frame: object) -> None:
    if _raise:  # inside main(): unwind, so files being set up (a demo video, a cache) are cleaned up
        raise StartupInterrupted(signum)
    try:  # still importing (torch): no file of ours is open yet
        sys.stderr.write(f"{StartupInterrupted(signum)}\n")
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)


def raise_on_signal() -> None:
    """From now on the start-up handlers raise :class:`StartupInterrupted` instead of exiting at once."""
    global _raise
    _raise = True


def install_startup_handlers() -> None:
    """Exit with one line and code 130 (SIGINT) / 143 (SIGTERM) on those signals until replaced."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)


def end_startup() -> None:
    """Put back the default SIGINT/SIGTERM behaviour where the start-up handlers are still installed."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    for sig, default in defaults.items():
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, default)
