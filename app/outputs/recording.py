"""Crash-safe recordings: a fragmented MP4 partial that plays after a crash, finalised by a remux.

While a run records ``rec.mp4`` it writes ``rec.partial.mp4`` beside it (:func:`partial_path`):
fragmented MP4 (:data:`app.outputs.encoders.FRAGMENTED_MP4`), so after ``kill -9`` or a power loss every fragment
already written plays (all but about the last second). The file is locked while it is written and
``fsync``-ed every :data:`SYNC_INTERVAL_S`. A clean stop remuxes it (stream copy, no re-encode) into
``rec.mp4``, ``faststart`` with the index first, written atomically, then removes the partial
(:meth:`FragmentedRecording.finalise`). The next start with the same output finds a partial left by a
crash and finalises it as ``rec.recovered-<time>.mp4`` (:func:`recover_partial`), never over a file.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from app.errors import SetupError
from app.outputs.encoders import FrameEncoder, open_encoder
from app.size import Size
from models.atomic_io import atomic_path

try:
    import fcntl
except ImportError:  # not POSIX: no lock, the rest works
    fcntl = None  # type: ignore[assignment]

LOG = logging.getLogger(__name__)

#: Seconds between ``fsync`` calls on the partial (what a power loss may cost on top of the last fragment).
SYNC_INTERVAL_S = 1.0
#: Output suffix → FFmpeg format name of the finalised file.
FINAL_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


def partial_path(output: Path) -> Path:
    """The partial recording of ``output``: ``rec.mp4`` → ``rec.partial.mp4`` (always fragmented MP4)."""
    return output.with_name(f"{output.stem}.partial.mp4")


def _free_name(output: Path, label: str, when: float) -> Path:
    """``<stem>.<label>-YYYYmmdd-HHMMSS.mp4`` beside ``output``, with ``-2``, ``-3`` ... if that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    candidate = output.with_name(f"{output.stem}.{label}-{stamp}.mp4")
    number = 2
    while candidate.exists():
        candidate = output.with_name(f"{output.stem}.{label}-{stamp}-{number}.mp4")
        number += 1
    return candidate


def _cut_size(path: Path) -> int | None:
    """The size of an MP4 whose last top-level box is cut short (a crash while a fragment was written), else ``None``."""
    size = path.stat().st_size
    offset = 0
    with open(path, "rb") as handle:
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            length = struct.unpack(">I", header[:4])[0]
            if length == 1 and len(header) == 16:
                length = struct.unpack(">Q", header[8:16])[0]
            if length == 0:  # the box runs to the end of the file
                return None
            if length < 8:
                return size  # not a box: what follows is no use
            offset += length
    return size if offset != size else None


def remux(source: Path, destination: Path) -> int:
    """Copy the video stream of ``source`` into ``destination`` (container from its suffix, no re-encode).

    mp4/mov get ``faststart`` (the index before the media). A frame cut short by a crash is left out.
    Written atomically (temporary file, then rename); returns the packets copied. Raises :class:`OSError`
    naming both files when ``source`` has no readable video stream or the copy fails.
    """
    import av

    container_format = FINAL_FORMATS.get(destination.suffix.lower())
    if container_format is None:
        raise OSError(f"{destination}: unsupported container (expected one of {', '.join(FINAL_FORMATS)})")
    options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
    cut = _cut_size(source)  # a frame that reaches the end of a cut file is a piece of one: left out
    try:
        with av.open(str(source)) as reader, atomic_path(destination) as tmp:
            if not reader.streams.video:
                raise OSError(f"{source}: no video stream (expected a recording of this app)")
            stream = reader.streams.video[0]
            with av.open(str(tmp), mode="w", format=container_format, options=options) as writer:
                copy = writer.add_stream_from_template(stream)
                if container_format == "avi" and stream.average_rate:
                    copy.time_base = Fraction(1) / stream.average_rate  # AVI counts frames, not time
                count = 0
                for packet in reader.demux(stream):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    if cut is not None and packet.pos is not None and packet.pos + packet.size >= cut:
                        continue
                    packet.stream = copy
                    writer.mux(packet)
                    count += 1
    except (av.FFmpegError, OSError, ValueError) as error:
        raise OSError(f"could not copy the recording {source} into {destination}: {error}") from error
    return count


def _lock(handle: BinaryIO, path: Path) -> None:
    """Hold an exclusive lock on ``path`` while ``handle`` is open; raise if another process holds it."""
    if fcntl is None:
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SetupError(f"--output: {path} is being written by another running process (expected one run per --output)") from None
    except OSError as error:  # a file system without locks: record unlocked
        LOG.debug("%s: not locked (%s)", path, error)


def _sync_folder(folder: Path) -> None:
    """``fsync`` a folder, so a file just created in it is on disk (where the file system allows it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def recover_partial(output: Path) -> Path | None:
    """Finalise a partial recording of ``output`` left by a crashed run; returns the file made, if any.

    The partial becomes ``<stem>.recovered-<time it was last written>.mp4`` (never over an existing file)
    and is removed; both paths are logged. One that holds no frame is removed; one that cannot be read is
    kept as ``<stem>.damaged-<time>.mp4``. Raises :class:`SetupError` when a running process writes it.
    """
    partial = partial_path(output)
    if not partial.is_file():
        return None
    with open(partial, "rb") as handle:
        _lock(handle, partial)
        when = partial.stat().st_mtime
        if partial.stat().st_size == 0:
            partial.unlink()
            LOG.warning("%s: left empty by an interrupted run; removed", partial)
            return None
        try:
            import av  # noqa: F401
        except ImportError:
            LOG.warning("%s: left by an interrupted run; it plays as it is (PyAV is needed to finalise it)", partial)
            return None
        recovered = _free_name(output, "recovered", when)
        try:
            frames = remux(partial, recovered)
        except OSError as error:
            damaged = _free_name(output, "damaged", when)
            os.replace(partial, damaged)
            LOG.warning("%s: left by an interrupted run and could not be finalised (%s); kept as %s", partial, error, damaged)
            return damaged
        if frames == 0:
            recovered.unlink()
            partial.unlink()
            LOG.warning("%s: left by an interrupted run before its first complete frame; removed", partial)
            return None
        partial.unlink()
    LOG.warning("%s: left by an interrupted run; its %d frames are finalised as %s", partial, frames, recovered)
    return recovered


class FragmentedRecording:
    """Frames encoded into ``partial_path(output)`` as fragmented MP4, ``fsync``-ed every second.

    Created by :meth:`open` at the first frame; :meth:`finish` closes the partial, :meth:`finalise` turns it
    into ``output``. The partial stays locked (see :func:`recover_partial`) until finalised.
    """

    def __init__(self, output: Path, handle: BinaryIO, encoder: FrameEncoder) -> None:
        self.output = output
        self.partial = partial_path(output)
        self._handle = handle
        self._encoder = encoder
        self._synced = time.monotonic()

    @classmethod
    def open(cls, output: Path, codec: str, fps: float, size: Size, preset: str | None = None) -> FragmentedRecording:
        """Create the partial of ``output`` (refusing one that exists) and its encoder."""
        partial = partial_path(output)
        try:
            handle = open(partial, "xb", buffering=0)  # noqa: SIM115 - owned by the recording until finalised
        except FileExistsError:
            raise OSError(f"{partial}: exists (another run recording to {output}?); expected no partial recording") from None
        try:
            _lock(handle, partial)
            _sync_folder(partial.parent)  # the new name survives a power loss too
            encoder = open_encoder(handle, codec, fps, size, preset, fragmented=True)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        return cls(output, handle, encoder)

    def encode(self, frame: np.ndarray) -> None:
        """Append one frame; ``fsync`` the partial when the last one is a second old."""
        self._encoder.encode(frame)
        if time.monotonic() - self._synced >= SYNC_INTERVAL_S:
            os.fsync(self._handle.fileno())
            self._synced = time.monotonic()

    def finish(self) -> None:
        """Encode what is pending and close the partial (complete, still locked and in place)."""
        try:
            self._encoder.finish()
        finally:
            os.fsync(self._handle.fileno())

    def finalise(self) -> int:
        """Remux the finished partial into ``output`` (atomically, ``faststart``), then remove it; returns frames.

        On failure the partial is kept (the next start recovers it) and :class:`OSError` names both files.
        """
        try:
            frames = remux(self.partial, self.output)
            self.partial.unlink()
        finally:
            self._handle.close()
        return frames

    def abandon(self) -> None:
        """Close the partial without finalising it (kept for the next start to recover)."""
        self._handle.close()
