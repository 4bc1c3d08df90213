"""Backend *specs* used by ``verify``, ``bench`` and ``gpu_check``: ``name[/precision][+graphs]``.

Examples: ``onnxruntime-cpu``, ``onnxruntime-cpu/fp16``, ``torch-cuda/fp32``, ``torch-cuda+graphs``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.backends.factory import CONCRETE_BACKENDS, backend_unavailable, construct, create_backend
from engine.backends.registry import capabilities
from engine.backends.torch_backend import TorchBackend
from engine.model_source import load_model_source


@dataclass(frozen=True)
class BackendSpec:
    """A backend name plus precision and the CUDA-graphs switch."""

    name: str
    precision: str = "auto"
    cuda_graphs: bool = False

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        """Parse ``name[/precision][+graphs]``; raise ``ValueError`` naming the accepted forms."""
        body, plus, suffix = text.strip().partition("+")
        if plus and suffix != "graphs":
            raise ValueError(f"backend spec {text!r}: only '+graphs' may follow the name")
        name, _, precision = body.partition("/")
        if name not in CONCRETE_BACKENDS:
            raise ValueError(f"backend spec {text!r}: unknown backend {name!r}; expected one of {CONCRETE_BACKENDS}")
        if precision and precision not in ("fp32", "fp16", "int8"):
            raise ValueError(f"backend spec {text!r}: precision must be fp32, fp16 or int8")
        if precision == "int8" and name != "onnxruntime-cpu":
            raise ValueError(f"backend spec {text!r}: int8 runs on onnxruntime-cpu only")
        if plus and name != "torch-cuda":
            raise ValueError(f"backend spec {text!r}: CUDA graphs are only available for torch-cuda")
        return cls(name, precision or "auto", bool(plus))

    def __str__(self) -> str:
        text = self.name if self.precision == "auto" else f"{self.name}/{self.precision}"
        return text + ("+graphs" if self.cuda_graphs else "")

    def unavailable(self) -> str | None:
        """``None`` if this spec can run here, else why not (also: a precision the backend does not run)."""
        accepted = capabilities(self.name).precisions
        if self.precision != "auto" and self.precision not in accepted:
            return f"{self.name} does not run {self.precision} (it runs {', '.join(accepted)})"
        return backend_unavailable(self.name)

    def create(self, model_path: str | os.PathLike[str]) -> InferenceBackend:
        """Construct the backend for ``model_path``; :class:`BackendUnavailable` (with the reason) when it
        cannot run or fails to start here."""
        reason = self.unavailable()
        if reason:
            raise BackendUnavailable(f"{self.name}: {reason}")
        if self.cuda_graphs:
            model, meta = load_model_source(Path(model_path))
            return construct(str(self), lambda: TorchBackend(model, meta, device="cuda", half=self.precision != "fp32",
                                                             cuda_graphs=True))
        return create_backend(model_path, self.name, self.precision)


def parse_specs(text: str | None, default: list[str]) -> list[BackendSpec]:
    """Comma-separated specs (or ``default``)."""
    items = [item for item in (text.split(",") if text else default) if item.strip()]
    return [BackendSpec.parse(item) for item in items]
