"""Ctrl-C or SIGTERM while ``python -m app`` starts up (importing torch, loading the model): one line, exit 130/143.

Installed before the heavy imports. Nothing has been written at that point (outputs are created at the
first frame), so the process exits at once; once the pipeline runs, its own handlers take over and
finalise the outputs.
"""

from __future__ import annotations

import os
import signal
import sys

#: ``128 + signal number``, as a shell reports a process ended by that signal.
EXIT_SIGINT = 128 + int(signal.SIGINT)
EXIT_SIGTERM = 128 + int(signal.SIGTERM)


def _on_signal(signum: int, _frame: object) -> None:
    name = signal.Signals(signum).name
    try:
        sys.stderr.write(f"{name}: interrupted during start-up, nothing written (exit {128 + signum})\n")
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)


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
