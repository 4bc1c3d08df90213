"""Self-describing checkpoints.

A checkpoint carries everything needed to rebuild and run the model: the architecture
config, the input size, the normalisation, the decision threshold, a summary of the training
data and the validation metrics. Loaders rebuild the network from it; no flag has to match
training. Files are plain ``torch.save`` dictionaries of tensors, strings and numbers, read
back with ``torch.load(..., weights_only=True)`` and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.atomic_io import atomic_write_with
from models.frame_model import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, FrameSegmenter
from models.unet import UNet, UNetConfig

CHECKPOINT_FORMAT = "surgical-seg-checkpoint"
CHECKPOINT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default.pt"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a checkpoint of this project."""


@dataclass
class ModelMeta:
    """Everything a loader needs besides the weights."""

    config: UNetConfig
    input_height: int = 256
    input_width: int = 320
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std_rgb: tuple[float, float, float] = IMAGENET_STD_RGB
    threshold: float = 0.5
    input_format: str = "uint8 NHWC BGR, resized to input_height x input_width"
    output_format: str = "float logits N x 1 x H x W; sigmoid(logits) >= threshold is instrument"
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_height < 1 or self.input_width < 1:
            raise ValueError(f"input size must be positive, got {self.input_height}x{self.input_width}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        self.mean_rgb = tuple(float(v) for v in self.mean_rgb)  # type: ignore[assignment]
        self.std_rgb = tuple(float(v) for v in self.std_rgb)  # type: ignore[assignment]

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` the network expects."""
        return self.input_height, self.input_width

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        values = asdict(self)
        values["config"] = self.config.to_dict()
        values["mean_rgb"] = list(self.mean_rgb)
        values["std_rgb"] = list(self.std_rgb)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelMeta:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["config"] = UNetConfig.from_dict(values["config"])
        values["mean_rgb"] = tuple(values["mean_rgb"])
        values["std_rgb"] = tuple(values["std_rgb"])
        return cls(**values)


def build_segmenter(meta: ModelMeta) -> FrameSegmenter:
    """A freshly initialised :class:`FrameSegmenter` for ``meta``."""
    return FrameSegmenter(UNet(meta.config), meta.mean_rgb, meta.std_rgb)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 (hex, first 16 chars) of the model's parameters and buffers, in key order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: FrameSegmenter,
    meta: ModelMeta,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write ``model`` and ``meta`` (plus optional training state in ``extra``).

    ``extra`` may hold optimizer/scheduler state dicts and counters for ``--resume``;
    it must contain only tensors, numbers, strings, lists and dicts.
    """
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "meta_json": json.dumps(meta.to_dict()),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra:
        payload["extra"] = extra
    return atomic_write_with(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the raw checkpoint dictionary safely (``weights_only=True``) and validate its header."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    problem = describe_non_checkpoint(path)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path}: {problem} (expected {EXPECTED_FILE})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol warnings: the error below says it all
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt/foreign files
        raise CheckpointError(f"checkpoint {path}: {_load_failure(error)} (expected {EXPECTED_FILE})") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a {CHECKPOINT_FORMAT} file (expected a dict with format={CHECKPOINT_FORMAT!r})"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {payload.get('version')}, this code reads version {CHECKPOINT_VERSION}"
        )
    return payload


EXPECTED_FILE = f"a {CHECKPOINT_FORMAT} .pt file written by training.train or models.checkpoint.save_checkpoint"
_ZIP_MAGIC = b"PK\x03\x04"


def describe_non_checkpoint(path: Path) -> str | None:
    """What ``path`` is when it plainly is not a ``torch.save`` file (empty, text, ONNX, other data); else ``None``.

    ``torch.save`` writes a zip archive; the legacy format starts with a pickle protocol byte (0x80).
    """
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(_ZIP_MAGIC) or head[:1] == b"\x80":
        return None
    if head.startswith(b"\x08") and b"pytorch" in head[:64].lower() or path.suffix.lower() == ".onnx":
        return f"it looks like an ONNX model ({size} bytes), not a PyTorch checkpoint"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        first = text.strip().splitlines()[0][:40]
        return f"it is a text file ({size} bytes, starting {first!r}), not a PyTorch checkpoint"
    return f"it is not a PyTorch checkpoint ({size} bytes of unrecognised data: neither a zip archive nor a pickle)"


def _load_failure(error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in our words (never torch's advice to load unsafely)."""
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text:
        return (
            "it holds Python objects that a safe load refuses (loading them could run code from the file); "
            "it was not written by this project"
        )
    first = text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
    return f"it is damaged or not a PyTorch checkpoint ({first})"


def load_checkpoint(path: str | os.PathLike[str] = DEFAULT_CHECKPOINT) -> tuple[FrameSegmenter, ModelMeta]:
    """Rebuild the model described by the checkpoint at ``path``; returned in eval mode on the CPU."""
    payload = read_checkpoint(path)
    try:
        meta = ModelMeta.from_dict(json.loads(payload["meta_json"]))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} has invalid metadata: {error}") from error
    model = build_segmenter(meta)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {path}: weights do not match its config {meta.config}: {error}") from error
    return model.eval(), meta


def checkpoint_meta(payload: dict[str, Any], path: str | os.PathLike[str]) -> ModelMeta:
    """The :class:`ModelMeta` stored in a payload from :func:`read_checkpoint` (``path`` names it in errors)."""
    try:
        return ModelMeta.from_dict(json.loads(payload["meta_json"]))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} has invalid metadata: {error}") from error
