"""Frames for INT8 calibration and for the INT8-vs-FP32 parity record (:mod:`engine.int8`).

Calibration uses **training** frames only: frames of the project's generator (``synthetic/``)
and, only when the checkpoint's metadata (``meta.data``) says it trained on ROBUST-MIS and the
folder exists, real frames of the ROBUST-MIS training operations (``prokto1``, ``prokto2``,
``rektum1``, ``rektum2``) read at run time from ``../shared/realtrain/robustmis``. A model trained
on generated data only is calibrated on generated frames only, so its terms stay clean.
``realdev`` (evaluation only) is never read: a path naming it is refused.

Parity frames (never calibrated on): other generator seeds, and the ROBUST-MIS validation
operations (``prokto3``, ``rektum3``) when present. Every frame goes through the export's own
input contract: ``uint8`` BGR ``N×H×W×3`` at the model input size (:func:`resize_to_input`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.checkpoint import ModelMeta
from models.frame_model import resize_to_input
from synthetic import GENERATOR_VERSION, SceneConfig, SceneRenderer

#: ``../shared/realtrain/robustmis`` next to the repository (training frames; read, never copied).
REAL_TRAIN_ROOT = Path(__file__).resolve().parents[2] / "shared" / "realtrain" / "robustmis"
REAL_TRAIN_ENV = "SURGSEG_REALTRAIN_DIR"  #: overrides :data:`REAL_TRAIN_ROOT` (tests point it elsewhere)
REAL_NAME = "robustmis"
VAL_OPERATIONS = ("prokto3", "rektum3")
VARIANTS = ("conv-lowres", "conv", "conv-noends", "all")
ACTIVATIONS = ("qint8", "quint8")
CALIBRATION_SEED, VALIDATION_SEED = 9100, 9200
FRAME_INDICES = (0, 15)  #: two far-apart frames of each generated scene
FORBIDDEN_PART = "realdev"


@dataclass(frozen=True)
class Int8Recipe:
    """How an INT8 model is calibrated and checked; every field is part of the cache key."""

    #: "conv-lowres": the Conv nodes at 1/4 of the input size or less; "conv": every Conv; "conv-noends":
    #: every Conv but the first and the last; "all": every op the quantizer supports
    variant: str = "conv-lowres"
    activations: str = "qint8"
    generated_scenes: int = 16  #: calibration: generated scenes × FRAME_INDICES
    real_frames: int = 32  #: calibration: ROBUST-MIS training frames (when allowed)
    val_generated_scenes: int = 8  #: parity: generated scenes × FRAME_INDICES
    val_real_frames: int = 300  #: parity: at most this many ROBUST-MIS validation frames
    speed_rounds: int = 8  #: interleaved FP32/INT8 timing rounds at build time (0: not timed)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"INT8 variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"INT8 activations must be one of {ACTIVATIONS}, got {self.activations!r}")
        if self.generated_scenes < 1:
            raise ValueError(f"generated_scenes must be >= 1, got {self.generated_scenes}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def real_train_root() -> Path:
    """The ROBUST-MIS training folder: ``$SURGSEG_REALTRAIN_DIR``, else :data:`REAL_TRAIN_ROOT`."""
    override = os.environ.get(REAL_TRAIN_ENV)
    return Path(override).expanduser() if override else REAL_TRAIN_ROOT


def check_not_realdev(path: Path) -> Path:
    """``path`` itself; ``ValueError`` when it (resolved) names the evaluation-only ``realdev`` set."""
    resolved = Path(path).resolve()
    if any(FORBIDDEN_PART in part.lower() for part in (*Path(path).parts, *resolved.parts)):
        raise ValueError(f"{path}: {FORBIDDEN_PART} is for evaluation only and is never read for INT8 calibration")
    return path


def trained_on_real(meta: ModelMeta) -> bool:
    """Whether the checkpoint's training data (``meta.data``) included the ROBUST-MIS real frames."""
    data = meta.data or {}
    roots = [data.get("root")] + [entry.get("root") for entry in data.get("roots", []) if isinstance(entry, dict)]
    names = {Path(root).name for root in roots if root}
    videos = data.get("train_videos", [])
    return REAL_NAME in names or (isinstance(videos, list) and any(str(v).startswith(REAL_NAME + "/") for v in videos))


def real_files(root: Path, validation: bool) -> list[Path]:
    """The ROBUST-MIS images of the validation (``prokto3``, ``rektum3``) or the training operations, sorted."""
    folder = check_not_realdev(root) / "images"
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [p for p in files if (p.stem.split("_f")[0] in VAL_OPERATIONS) == validation]


def spread(items: list[Path], count: int) -> list[Path]:
    """At most ``count`` items, evenly spaced over ``items``."""
    if count <= 0 or not items:
        return []
    if count >= len(items):
        return list(items)
    if count == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def read_frames(files: list[Path], size: tuple[int, int]) -> np.ndarray:
    """BGR ``uint8`` frames at ``size`` (the export's input contract); ``ValueError`` naming an unreadable file."""
    frames = []
    for path in files:
        image = cv2.imread(str(check_not_realdev(path)), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"INT8 calibration/parity frame {path} could not be read as an image")
        frames.append(resize_to_input(image, size))
    return np.stack(frames) if frames else np.zeros((0, *size, 3), np.uint8)


def generated_frames(first_seed: int, scenes: int, size: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Frames and masks of ``scenes`` generated scenes (every other one with extended instruments)."""
    frames, masks = [], []
    for scene in range(scenes):
        config = SceneConfig(extended_instruments=scene % 2 == 1)
        renderer = SceneRenderer(first_seed + scene, size[1], size[0], config)
        for index in FRAME_INDICES:
            frame, mask = renderer.render(index)
            frames.append(frame)
            masks.append(mask)
    return np.stack(frames), masks


def _file_list(files: list[Path]) -> list[list[Any]]:
    return [[p.name, p.stat().st_size] for p in files]


def calibration_set(meta: ModelMeta, recipe: Int8Recipe, real_root: Path | None) -> tuple[list[Path], dict[str, Any]]:
    """The real calibration files (possibly none) and the description of the whole calibration set."""
    size = f"{meta.input_height}x{meta.input_width}"
    generated = {"generator": f"synthetic {GENERATOR_VERSION}", "scenes": recipe.generated_scenes,
                 "seeds": [CALIBRATION_SEED, CALIBRATION_SEED + recipe.generated_scenes - 1],
                 "frame_indices": list(FRAME_INDICES), "frames": recipe.generated_scenes * len(FRAME_INDICES),
                 "extended_instruments": "every other scene"}
    files: list[Path] = []
    if real_root is None:
        reason = "no real-frame folder given"
    elif not trained_on_real(meta):
        reason = "the checkpoint's training data (meta.data) has no ROBUST-MIS root: generated frames only"
    elif not (real_files(real_root, validation=False)):
        reason = f"{real_root}/images has no ROBUST-MIS training frames"
    else:
        files = spread(real_files(real_root, validation=False), recipe.real_frames)
        reason = "the checkpoint trained on these operations"
    real = {"root": str(real_root) if real_root else None, "used": bool(files), "reason": reason,
            "operations": sorted({p.stem.split("_f")[0] for p in files}), "frames": len(files)}
    return files, {"input": f"uint8 BGR Nx{size}x3 (the export's contract)", "generated": generated, "real": real}


def validation_files(real_root: Path | None, recipe: Int8Recipe) -> list[Path]:
    """ROBUST-MIS validation-operation files used by the parity record (none when the folder is absent)."""
    return spread(real_files(real_root, validation=True), recipe.val_real_frames) if real_root else []


def recipe_digest(recipe: Int8Recipe, description: dict[str, Any], calib: list[Path], val: list[Path],
                  quantizer: str) -> str:
    """16 hex digits naming everything that goes into an INT8 file besides the FP32 weights and input size."""
    key = {"recipe": recipe.to_dict(), "calibration": description, "calibration_files": _file_list(calib),
           "validation_files": _file_list(val), "quantizer": quantizer}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
