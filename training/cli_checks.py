"""Argument checks shared by the training CLIs, done before any work starts."""

from __future__ import annotations

from pathlib import Path


def out_dir_problem(path: Path, option: str = "--out") -> str | None:
    """Why ``path`` cannot be used as an output folder (an existing file, or a file on its way), else ``None``."""
    if path.exists() and not path.is_dir():
        return f"{option} {path}: exists and is a file (expected a folder to write the run into, new or existing)"
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{option} {path}: {parent} is a file, so the folder cannot be created (expected a folder path)"
    return None
