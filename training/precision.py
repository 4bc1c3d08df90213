"""Training precision: float32, bfloat16 autocast on CPUs with native bf16, float16 autocast on CUDA.

``--precision auto`` picks per machine and says why:

- CUDA: ``fp16`` (autocast + gradient scaling), as ``--amp`` always did;
- a CPU with native bfloat16 instructions (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``):
  ``bf16`` autocast with channels_last tensors (oneDNN's fast path; no gradient scaling needed,
  bfloat16 has float32's exponent range);
- any other CPU: ``fp32``. Without native bf16, oneDNN emulates it and a training step is many times
  slower (measured on a 2-core AMD EPYC without AVX-512: see ``python -m training.step_bench``).

Weights, the optimizer and the loss stay float32 in every mode; only the forward/backward of the
network runs in the lower precision, so checkpoints are the same whichever was used.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from models.cpu import cpu_flags

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


class PrecisionError(ValueError):
    """A precision that this device cannot train in."""


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    return bool(set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))


@dataclass(frozen=True)
class Precision:
    """How the forward/backward pass runs: ``name`` (fp32, bf16 or fp16) on ``device_type``, and why."""

    name: str
    device_type: str
    reason: str = ""

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain float32."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def scales_gradients(self) -> bool:
        """float16 needs gradient scaling; bfloat16 and float32 do not."""
        return self.name == "fp16"

    @property
    def channels_last(self) -> bool:
        """channels_last tensors: oneDNN's fast layout for bf16 on the CPU."""
        return self.name == "bf16" and self.device_type == "cpu"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The context the network's forward pass runs in."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in the memory layout this precision runs fastest with (in place; returned for chaining).

        The frame model permutes its ``N×H×W×3`` input to ``N×3×H×W``, which is channels_last already."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def resolve_precision(requested: str, device: torch.device, flags: set[str] | None = None) -> Precision:
    """The precision to train in on ``device`` for ``--precision requested``; ``auto`` explains its choice.

    Raises :class:`PrecisionError` for a precision the device cannot run (fp16 on the CPU)."""
    if requested not in PRECISIONS:
        raise PrecisionError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    kind = device.type
    if requested == "fp16" and kind != "cuda":
        raise PrecisionError(f"--precision fp16 needs a CUDA device, got {device}; use bf16 or fp32 on the CPU")
    if requested != "auto":
        note = ""
        if requested == "bf16" and kind == "cpu" and not cpu_has_native_bf16(flags):
            note = " (this CPU has no native bf16: expect a much slower step than fp32)"
        return Precision(requested, kind, f"--precision {requested}{note}")
    if kind == "cuda":
        return Precision("fp16", kind, "auto: CUDA device, float16 autocast with gradient scaling")
    if kind == "cpu" and cpu_has_native_bf16(flags):
        found = sorted(set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))
        return Precision("bf16", kind, f"auto: the CPU has native bfloat16 ({', '.join(found)}): bf16 autocast, channels_last")
    return Precision("fp32", kind, f"auto: no native bfloat16 on this {kind} (no {' or '.join(BF16_CPU_FLAGS)}): float32")
