"""Output paths checked before anything is opened: writable, and clashing with neither the source nor each other.

Nothing is created here: a writability probe file is made and removed at once in the nearest existing
folder, so a run that fails later leaves no empty folder or file behind (the outputs themselves are
created when the first frame arrives, see :mod:`app.outputs.writers`).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from app.errors import SetupError

#: Mask files written by :class:`app.outputs.writers.MaskWriter` (``000123.png``, and ``.000123.png.part`` that a
#: crash left while one was being written).
MASK_NAME = re.compile(r"^(\d{6}\.png|\.\d{6}\.png\.part)$")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _filesystem_type(path: Path) -> str | None:
    """The file-system type (``proc``, ``sysfs``, ``ext4`` ...) holding ``path``, from ``/proc/mounts``."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    target = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


_VIRTUAL_FS = {"proc", "sysfs", "devtmpfs", "cgroup", "cgroup2", "debugfs", "securityfs", "tracefs", "configfs"}


def check_writable_dir(directory: Path, option: str, shown: Path | None = None) -> None:
    """Raise :class:`SetupError` unless files can be created in ``directory`` (or where it would be created).

    ``shown`` is the path named in the message (the option's value; defaults to ``directory``).
    """
    shown = shown if shown is not None else directory
    if directory.exists() and not directory.is_dir():
        raise SetupError(f"{option} {shown}: {directory} exists and is not a directory (expected a writable directory)")
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        raise SetupError(f"{option} {shown}: {existing} is a file, so the folder {directory} cannot be created")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as error:
        kind = _filesystem_type(existing)
        if kind in _VIRTUAL_FS:
            why = f"{existing} is on the virtual '{kind}' file system, which holds no user files"
        elif error.errno == 30:  # EROFS
            why = f"{existing} is on a read-only file system"
        elif error.errno == 13:  # EACCES
            why = f"no permission to create files in {existing}"
        else:
            why = f"cannot create a file in {existing}: {error.strerror or error}"
        raise SetupError(f"{option} {shown}: not writable ({why}; expected a path in a writable folder)") from error


def check_output_file(path: Path, option: str) -> Path:
    """Validate an output file path: not a directory, in a folder where files can be created."""
    if path.is_dir():
        raise SetupError(f"{option} {path}: is a directory (expected a file path)")
    if path.exists() and not path.is_file():  # a device, FIFO or socket: never replaced by a rename
        raise SetupError(f"{option} {path}: exists and is not a regular file (expected a new or regular file path)")
    check_writable_dir(path.parent if str(path.parent) else Path("."), option, shown=path)
    return path


def check_mask_dir(directory: Path, overwrite: bool) -> list[Path]:
    """Validate ``--save-masks``: refuse a folder holding files unless ``overwrite``; returns old masks to replace.

    With ``overwrite`` only a folder holding nothing but mask PNGs of an earlier run (``NNNNNN.png``, or a
    ``.NNNNNN.png.part`` left by a crash) is accepted; those are deleted when the first new mask is written, so runs never mix.
    """
    check_writable_dir(directory, "--save-masks")
    if not directory.is_dir():
        return []
    entries = sorted(directory.iterdir())
    if not entries:
        return []
    others = [p for p in entries if not (p.is_file() and MASK_NAME.match(p.name))]
    if not overwrite:
        raise SetupError(
            f"--save-masks {directory}: the folder is not empty ({len(entries)} entries, e.g. {entries[0].name}); "
            "expected an empty or new folder, or pass --overwrite to replace the masks of an earlier run"
        )
    if others:
        raise SetupError(
            f"--save-masks {directory} --overwrite: the folder holds {others[0].name}, which is not a mask of an "
            "earlier run (expected only NNNNNN.png files); choose an empty or new folder"
        )
    return entries


def _same(a: Path, b: Path) -> bool:
    """Same resolved path, or the same existing file (hard link, bind mount ...)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    """Whether ``child`` is ``folder`` or lies under it (resolved paths)."""
    child, folder = child.resolve(), folder.resolve()
    return child == folder or folder in child.parents


def check_clashes(source: Path | None, files: dict[str, Path], folders: dict[str, Path]) -> None:
    """Raise :class:`SetupError` when an output would overwrite the source or another output.

    ``source`` is the local input file or folder (``None`` for cameras and streams); ``files`` maps
    options to output files (``--output``, ``--stats``), ``folders`` to output folders (``--save-masks``,
    ``--screenshot-dir``).
    """
    items = [(option, path, False) for option, path in files.items()]
    items += [(option, path, True) for option, path in folders.items()]
    for option, path, _ in items if source is not None else []:
        if _same(path, source):  # type: ignore[arg-type]
            raise SetupError(f"{option} {path}: is the source {source} (expected an output path that does not overwrite the input)")
    for i, (option_a, path_a, folder_a) in enumerate(items):
        for option_b, path_b, folder_b in items[i + 1 :]:
            clash = _same(path_a, path_b)
            clash = clash or (folder_a and not folder_b and _inside(path_b, path_a))
            clash = clash or (folder_b and not folder_a and _inside(path_a, path_b))
            clash = clash or (folder_a and folder_b and (_inside(path_a, path_b) or _inside(path_b, path_a)))
            if clash:
                raise SetupError(
                    f"{option_a} {path_a} and {option_b} {path_b}: the same path or one inside the other (expected separate outputs)"
                )
