"""Where the engine keeps generated artefacts (exported ONNX files, TensorRT engines)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SURGSEG_CACHE_DIR"


def cache_root() -> Path:
    """Root cache folder: ``$SURGSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/surgical-seg``, else ``~/.cache/surgical-seg``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "surgical-seg"


def onnx_cache_dir() -> Path:
    """Folder of ONNX files exported from checkpoints."""
    return cache_root() / "onnx"


def tensorrt_cache_dir() -> Path:
    """Folder of TensorRT engines and timing caches built by this code."""
    return cache_root() / "tensorrt"
