"""What each backend can do, declared once: device, precisions, concurrent calls, thread control, CUDA graphs,
device tensors.

The app plans workers and threads from these declarations (``app/core/inference_plan.py``), never
from backend names; the factory (:mod:`engine.backends.factory`) resolves ``auto`` with them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """Declared abilities of one concrete backend."""

    name: str
    device: str  #: "cpu" or "cuda"
    precisions: tuple[str, ...]  #: accepted precisions, the default (``auto``) first
    concurrent_calls: bool  #: ``infer``/``predict`` may run in several threads at once
    thread_control: bool  #: honours a CPU thread count (``threads=``)
    cuda_graphs: bool  #: can replay CUDA graphs (spec ``+graphs``)
    #: runs on device tensors without host copies (``infer_tensor``, ``stream_context``): the app's
    #: GPU-resident frame path (``app/gpu/stage.py``) is used for it
    device_tensors: bool = False

    @property
    def default_precision(self) -> str:
        """The precision ``auto`` means for this backend."""
        return self.precisions[0]


REGISTRY: dict[str, Capabilities] = {
    caps.name: caps
    for caps in (
        Capabilities("tensorrt", "cuda", ("fp16", "fp32"), False, False, False, device_tensors=True),
        Capabilities("torch-cuda", "cuda", ("fp16", "fp32"), False, False, True, device_tensors=True),
        Capabilities("onnxruntime-tensorrt", "cuda", ("fp16", "fp32"), False, False, False),
        Capabilities("onnxruntime-cuda", "cuda", ("fp16", "fp32"), False, False, False),
        Capabilities("onnxruntime-cpu", "cpu", ("fp32", "fp16", "int8"), True, True, False),
        Capabilities("torch-cpu", "cpu", ("fp32",), True, True, False),
    )
}
#: Concrete backends, fastest first.
CONCRETE_BACKENDS = tuple(REGISTRY)
BACKEND_NAMES = ("auto", *CONCRETE_BACKENDS)
#: What ``auto`` tries, in order.
AUTO_ORDER = ("tensorrt", "torch-cuda", "onnxruntime-cpu", "torch-cpu")


def capabilities(name: str) -> Capabilities:
    """The declared capabilities of concrete backend ``name`` (``ValueError`` for an unknown name or ``auto``)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(CONCRETE_BACKENDS)} "
                         "(resolve 'auto' with engine.backends.resolve_backend first)")
    return REGISTRY[name]
