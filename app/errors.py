"""The two kinds of failure the app reports: bad input before start, and a stage failing while running."""

from __future__ import annotations


class SetupError(ValueError):
    """Bad input found before any thread starts (missing file, bad URL, unwritable path, ...).

    The message is one line naming the option, the value and what was expected; the CLI exits with 2.
    """


class StageError(RuntimeError):
    """A pipeline stage (capture, inference, render) failed while processing a frame."""

    def __init__(self, stage: str, frame_index: int | None, cause: BaseException) -> None:
        where = f"frame {frame_index}" if frame_index is not None else "start-up"
        super().__init__(f"{stage} stage failed at {where}: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.frame_index = frame_index
        self.cause = cause
