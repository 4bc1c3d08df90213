"""The stage contract: what flows between stages (:class:`Frame`) and what every stage is (:class:`Stage`).

A stage is a small object with one method, :meth:`Stage.process`, that takes one frame and returns the
frames to hand on: usually ``[frame]``, none while a stage holds it (reordering), several when it
releases held ones. :meth:`Stage.close` finalises what the stage owns (a video file) and runs once at
the end, also after an error. Stages never see threads or queues; :mod:`app.pipeline` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from app.core.stage_timer import StageTimer
from app.core.stats import FrameTimes


@dataclass
class Frame:
    """One input frame on its way from the source to the sinks."""

    times: FrameTimes  #: index and timestamps
    image: np.ndarray  #: the input frame, BGR ``uint8``
    sequence: int = -1  #: order of arrival at inference; the reorder stage restores it
    probability: np.ndarray | None = None  #: model output at model resolution (inference)
    mask: np.ndarray | None = None  #: ``uint8`` 0/255 at frame resolution (post-process)
    output: np.ndarray | None = None  #: the composed image to write and show (compose)

    @property
    def index(self) -> int:
        """The input index of this frame."""
        return self.times.index


@runtime_checkable
class Stage(Protocol):
    """One step of the pipeline."""

    name: str  #: short name for errors and logs

    def process(self, frame: Frame) -> list[Frame]:
        """Handle ``frame``; the frames to pass to the next stage (in order)."""
        ...

    def close(self) -> None:
        """Finalise (idempotent); called once after the last frame, also after an error."""
        ...


class BaseStage:
    """A stage with nothing to finalise."""

    name = "stage"
    #: The :class:`~app.core.stage_timer.StageTimer` stage that :func:`run_chain` times this stage's
    #: :meth:`process` as (``None``: not timed there; a stage may record its own steps instead).
    timing: str | None = None

    def process(self, frame: Frame) -> list[Frame]:
        """Hand ``frame`` on unchanged."""
        return [frame]

    def close(self) -> None:
        """Nothing to finalise."""


def run_chain(
    stages: Sequence[Stage],
    frame: Frame,
    current: Callable[[Frame], None] | None = None,
    timer: StageTimer | None = None,
) -> list[Frame]:
    """Pass ``frame`` through ``stages`` in order; the frames that come out of the last one.

    ``current`` is told each frame before a stage processes it (the pipeline names it in errors).
    ``timer``: each stage with a ``timing`` name has its :meth:`Stage.process` timed under that name
    (call from one thread per stage list: a timer stage has one writer)."""
    frames = [frame]
    for stage in stages:
        handed: list[Frame] = []
        timing = getattr(stage, "timing", None) if timer is not None else None
        for item in frames:
            if current is not None:
                current(item)
            if timing is None:
                handed.extend(stage.process(item))
            else:
                with timer.span(timing):  # type: ignore[union-attr]
                    handed.extend(stage.process(item))
        frames = handed
        if not frames:
            break
    return frames


def close_all(stages: Sequence[Stage]) -> None:
    """Close every stage, even when one fails; re-raises the first failure."""
    first: BaseException | None = None
    for stage in stages:
        try:
            stage.close()
        except BaseException as error:  # noqa: B036 - the others must still be finalised
            first = first or error
    if first is not None:
        raise first
