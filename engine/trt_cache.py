"""TensorRT engine cache: keys, file names, sidecars and the safe-load rule (pure logic, CPU-tested).

An engine is specific to the model weights, the GPU (name, compute capability, SM count),
the TensorRT version, the precision and the input shape profile. The cache file name is a hash
of that key; a JSON sidecar beside it holds the full key and is compared on load, so a stale or
foreign engine is rebuilt instead of being run. A serialized engine is executable GPU code:
engines are only ever read from the cache folder this code writes, never from a path a user
or a config file points at.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from models.atomic_io import atomic_write_bytes, atomic_write_text

ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".json"
CACHE_FORMAT_VERSION = 1
#: The one batch profile every engine is built with (min 1, opt 1, max ``MAX_BATCH``): the
#: backend runs larger batches in chunks, so ``engine build`` and the app always ask for the same key.
MAX_BATCH = 4


class EngineCacheError(ValueError):
    """An engine path is outside the cache folder or otherwise not loadable."""


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on."""

    model_hash: str
    gpu_name: str
    compute_capability: str
    sm_count: int
    tensorrt_version: str
    precision: str
    build_path: str
    input_shape: tuple[int, int, int]  # H, W, 3
    batch_profile: tuple[int, int, int]  # min, opt, max batch
    format_version: int = CACHE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tuples as lists)."""
        values = asdict(self)
        values["input_shape"] = list(self.input_shape)
        values["batch_profile"] = list(self.batch_profile)
        return values

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form, first 24 hex chars."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def file_name(self) -> str:
        """``<model hash>-<precision>-<key digest>.engine`` (readable prefix, unique suffix)."""
        return f"{_safe(self.model_hash)}-{_safe(self.precision)}-{self.digest()}{ENGINE_SUFFIX}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:32]


class CacheState(str, Enum):
    """What :func:`cache_state` found for a key."""

    HIT = "hit"
    MISSING = "missing"
    MISMATCH = "mismatch"  # sidecar absent, unreadable or describing another key
    CORRUPT = "corrupt"  # engine file empty or unreadable


def engine_paths(cache_dir: Path, key: EngineKey) -> tuple[Path, Path]:
    """``(engine file, sidecar)`` for ``key`` inside ``cache_dir``."""
    engine = cache_dir / key.file_name()
    return engine, engine.with_suffix(SIDECAR_SUFFIX)


def cache_state(cache_dir: Path, key: EngineKey) -> CacheState:
    """Decide whether the cached engine for ``key`` may be loaded or must be (re)built."""
    engine, sidecar = engine_paths(cache_dir, key)
    if not engine.exists():
        return CacheState.MISSING
    try:
        stored = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return CacheState.MISMATCH
    if stored != key.to_dict():
        return CacheState.MISMATCH
    try:
        if engine.stat().st_size == 0:
            return CacheState.CORRUPT
    except OSError:
        return CacheState.CORRUPT
    return CacheState.HIT


def resolve_inside(cache_dir: Path, path: str | os.PathLike[str]) -> Path:
    """Return ``path`` resolved, or raise :class:`EngineCacheError` unless it is an engine file
    directly inside ``cache_dir`` (symlinks and ``..`` are resolved before the check)."""
    root = Path(cache_dir).resolve()
    resolved = Path(path).resolve()
    if resolved.parent != root or resolved.suffix != ENGINE_SUFFIX:
        raise EngineCacheError(
            f"refusing to load TensorRT engine {path}: engines are only loaded from the cache folder {root} "
            f"that this program writes (an engine file is executable GPU code); build one with `python -m engine build`"
        )
    return resolved


def read_engine(cache_dir: Path, path: str | os.PathLike[str]) -> bytes:
    """Read an engine file after :func:`resolve_inside` accepted it."""
    resolved = resolve_inside(cache_dir, path)
    try:
        return resolved.read_bytes()
    except OSError as error:
        raise EngineCacheError(f"TensorRT engine {resolved} could not be read: {error}") from error


def write_engine(cache_dir: Path, key: EngineKey, data: bytes) -> Path:
    """Atomically write the engine then its sidecar (sidecar last: a crash leaves a MISMATCH, never a bad HIT)."""
    if not data:
        raise EngineCacheError("refusing to cache an empty TensorRT engine")
    engine, sidecar = engine_paths(cache_dir, key)
    atomic_write_bytes(engine, data)
    atomic_write_text(sidecar, json.dumps(key.to_dict(), indent=2, sort_keys=True))
    return engine


def discard(cache_dir: Path, key: EngineKey) -> None:
    """Remove a stale or corrupt engine and its sidecar."""
    for path in engine_paths(cache_dir, key):
        resolve_inside(cache_dir, path.with_suffix(ENGINE_SUFFIX))  # never delete outside the cache
        path.unlink(missing_ok=True)


def timing_cache_path(cache_dir: Path, gpu_name: str, compute_capability: str, tensorrt_version: str) -> Path:
    """Timing cache file per GPU model and TensorRT version."""
    return cache_dir / f"timing-{_safe(gpu_name)}-sm{_safe(compute_capability)}-trt{_safe(tensorrt_version)}.cache"


def tensorrt_major(version: str) -> int:
    """The major version of a TensorRT version string (``"10.13.0.35"`` → 10); ``ValueError`` naming it otherwise."""
    try:
        return int(str(version).split(".")[0])
    except ValueError as error:
        raise ValueError(f"cannot read the TensorRT major version from {version!r}") from error


def fp16_build_path(tensorrt_version: str, has_fp16_flag: bool) -> str:
    """How to get an FP16 engine from this TensorRT:

    * ``"fp16-flag"``: TensorRT 10.x (weakly typed builds still allowed): parse the FP32 ONNX
      graph and set ``BuilderFlag.FP16``;
    * ``"strongly-typed-fp16-onnx"``: TensorRT >= 11 (precision flags removed, networks always
      strongly typed) or a build without the flag: parse the FP16 ONNX graph into a
      ``STRONGLY_TYPED`` network, so the types in the graph decide the precision.
    """
    major = tensorrt_major(tensorrt_version)
    if major < 10:
        raise ValueError(f"TensorRT {tensorrt_version} is too old: this code needs TensorRT >= 10 (tensor-name API)")
    if major >= 11 or not has_fp16_flag:
        return "strongly-typed-fp16-onnx"
    return "fp16-flag"
