"""ONNX Runtime backend: CPU by default; CUDA and TensorRT execution providers with ``onnxruntime-gpu``."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.onnx_cache import ensure_onnx
from engine.onnx_meta import INPUT_NAME, OUTPUT_NAME, is_onnx_path, read_onnx_meta
from engine.paths import tensorrt_cache_dir
from models.checkpoint import ModelMeta
from models.cpu import physical_cores

LOG = logging.getLogger("engine")

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
INSTALL_HINT = "onnxruntime is not installed: pip install onnxruntime"


def onnxruntime_unavailable(provider: str = "cpu") -> str | None:
    """``None`` if ONNX Runtime with ``provider`` can run here, else the reason."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {sorted(PROVIDERS)}, got {provider!r}")
    if importlib.util.find_spec("onnxruntime") is None:
        return INSTALL_HINT
    import onnxruntime as ort

    if PROVIDERS[provider] not in ort.get_available_providers():
        return (
            f"onnxruntime has no {PROVIDERS[provider]} (available: {', '.join(ort.get_available_providers())}): "
            "pip install onnxruntime-gpu"
        )
    return None


def provider_chain(provider: str, cache_dir: Path, fp16: bool) -> list[Any]:
    """The ``providers`` list for ``InferenceSession``: the requested provider first, then fall-backs."""
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    chain: list[Any] = []
    if provider == "tensorrt":
        chain.append((
            "TensorrtExecutionProvider",
            {
                "trt_fp16_enable": fp16,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache_dir),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache_dir),
            },
        ))
    chain.append("CUDAExecutionProvider")
    chain.append("CPUExecutionProvider")
    return chain


def resolve_onnx(model_path: Path, provider: str, precision: str) -> tuple[Path, ModelMeta, dict[str, Any]]:
    """The ONNX file to run for ``model_path`` at ``precision`` on ``provider``, with its meta and info.

    ``auto``: an ``.onnx`` file runs at its own precision; a checkpoint runs in fp16 on GPU providers,
    and on the CPU in INT8 where a cached INT8 build passes its record, else fp32
    (:func:`engine.int8.auto_cpu_model`, the reason logged). ``int8`` (CPU only) builds the INT8 file
    once (:func:`engine.int8.ensure_int8`) and warns when its parity record fails."""
    if precision == "auto" and is_onnx_path(model_path):
        precision = read_onnx_meta(model_path)[1]["precision"]
    if precision == "int8" and provider != "cpu":
        raise ValueError(f"int8 runs on onnxruntime-cpu only, not onnxruntime-{provider}; use fp16 or fp32 there")
    if precision == "int8":
        from engine.int8 import ensure_int8
        from engine.int8_record import parity_problem

        path, meta, info = ensure_int8(model_path)
        problem = parity_problem(info["int8"])
        if problem:
            LOG.warning("%s: running INT8 as asked, but its parity record fails: %s", path, problem)
        return path, meta, info
    if precision == "auto" and provider == "cpu":
        from engine.int8 import auto_cpu_model

        return auto_cpu_model(model_path)
    return ensure_onnx(model_path, "fp16" if precision == "auto" else precision)


class OnnxRuntimeBackend(InferenceBackend):
    """Runs an exported ONNX graph (``uint8`` frames in, ``float32`` logits out) in ONNX Runtime."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        provider: str = "cpu",
        precision: str = "auto",
        threads: int | None = None,
        spin_wait: bool = False,
    ) -> None:
        """``threads``: intra-op threads (default: physical cores). ``spin_wait``: let idle ORT threads
        busy-wait for work; lowers latency in an isolated benchmark but steals the CPU from the
        capture/render threads of a pipeline, so it is off by default."""
        reason = onnxruntime_unavailable(provider)
        if reason:
            raise BackendUnavailable(reason)
        import onnxruntime as ort

        onnx_path, meta, info = resolve_onnx(Path(model_path), provider, precision)
        super().__init__(meta)
        self.name = f"onnxruntime-{provider}"
        self.provider = provider
        self.precision = info["precision"]
        self.onnx_path = onnx_path
        self.dynamic_batch = bool(info["dynamic_batch"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or physical_cores()
        options.inter_op_num_threads = 1
        spin = "1" if spin_wait else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        cache_dir = tensorrt_cache_dir() / "onnxruntime"
        if provider == "tensorrt":
            cache_dir.mkdir(parents=True, exist_ok=True)
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=provider_chain(provider, cache_dir, self.precision == "fp16")
        )
        active = self.session.get_providers()
        if PROVIDERS[provider] not in active:
            raise BackendUnavailable(f"onnxruntime could not start {PROVIDERS[provider]} (active: {active})")
        self.threads = options.intra_op_num_threads
        self.active_provider = active[0]
        # InferenceSession.run is thread-safe; on the CPU concurrent runs add throughput, on a GPU they only queue.
        self.concurrent_calls = self.active_provider == "CPUExecutionProvider"

    def describe(self) -> str:
        """Backend, provider, precision and threads."""
        return f"{self.name} ({self.active_provider}, {self.precision}, {self.threads} thread{'' if self.threads == 1 else 's'})"

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8`` BGR ``N×H×W×3`` → ``float32`` logits ``N×1×H×W``."""
        self.check_batch(frames)
        frames = np.ascontiguousarray(frames)
        if self.dynamic_batch or frames.shape[0] == 1:
            (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: frames})
            return np.asarray(logits, dtype=np.float32)
        return np.concatenate([self.infer(frames[i : i + 1]) for i in range(frames.shape[0])])

    def close(self) -> None:
        """Drop the session."""
        self.session = None  # type: ignore[assignment]
