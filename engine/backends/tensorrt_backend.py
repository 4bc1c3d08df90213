"""TensorRT backend: builds (once, cached) and runs an FP16 engine from the exported ONNX graph.

Written against the TensorRT 10.x Python API, with the TensorRT 11 differences handled:

* build: ``Builder.create_network(flags)`` (explicit batch is implicit since 10.0; the
  ``STRONGLY_TYPED`` flag for strongly typed builds, ignored but accepted by 11.x),
  ``OnnxParser.parse`` with every ``get_error(i)`` reported, ``create_builder_config``,
  ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, …)``, one optimisation profile over the
  batch axis, a persisted timing cache, ``build_serialized_network``;
* FP16: TensorRT 10.x sets ``BuilderFlag.FP16`` on the FP32 graph; TensorRT >= 11 has no
  precision flags, so the FP16 ONNX graph (float16 weights, ``uint8`` in, ``float32`` out)
  is parsed into a strongly typed network (:func:`engine.trt_cache.fp16_build_path`);
* run: the tensor-name API only (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
  ``get_tensor_dtype``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``).

Device memory and streams are PyTorch CUDA tensors and streams instead of pycuda: one CUDA
context shared with the rest of the program, and resize/sigmoid run on the GPU (see README).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.backends.torch_backend import resize_on_device
from engine.export import INPUT_NAME, ensure_onnx, is_onnx_path
from engine.paths import tensorrt_cache_dir
from engine.trt_cache import (
    CacheState,
    EngineCacheError,
    EngineKey,
    cache_state,
    discard,
    engine_paths,
    fp16_build_path,
    read_engine,
    resolve_inside,
    timing_cache_path,
    write_engine,
)
from models.atomic_io import atomic_write_bytes

LOG = logging.getLogger("engine")
INSTALL_HINT = "tensorrt is not installed: pip install -r requirements-gpu.txt"
NO_CUDA = "no CUDA device found (torch.cuda.is_available() is False)"
_TORCH_DTYPES = {"UINT8": torch.uint8, "FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32}


def tensorrt_unavailable() -> str | None:
    """``None`` if the TensorRT backend can run here, else the reason."""
    if importlib.util.find_spec("tensorrt") is None:
        return INSTALL_HINT
    try:
        import tensorrt as trt
    except Exception as error:  # ImportError, or OSError when libnvinfer is missing
        return f"tensorrt could not be imported ({error}): pip install -r requirements-gpu.txt"
    if not hasattr(trt, "Builder"):  # e.g. a stray namespace package or type stubs only
        return f"{INSTALL_HINT} (the 'tensorrt' found has no runtime)"
    if not torch.cuda.is_available():
        return NO_CUDA
    return None


def gpu_identity(device: torch.device) -> tuple[str, str, int]:
    """``(name, "major.minor", SM count)`` of a CUDA device."""
    props = torch.cuda.get_device_properties(device)
    return props.name, f"{props.major}.{props.minor}", int(props.multi_processor_count)


def _parse_onnx(trt: Any, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n  " + "\n  ".join(errors or ["(no details)"]))


def build_serialized_engine(
    onnx_path: Path,
    key: EngineKey,
    timing_cache_file: Path,
    workspace_bytes: int = 2 << 30,
) -> bytes:
    """Build a serialized engine for ``key`` from ``onnx_path`` (minutes on first build)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = key.build_path == "strongly-typed-fp16-onnx" or int(trt.__version__.split(".")[0]) >= 11
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    _parse_onnx(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if key.build_path == "fp16-flag":
        config.set_flag(trt.BuilderFlag.FP16)
    height, width, channels = key.input_shape
    low, opt, high = key.batch_profile
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (low, height, width, channels), (opt, height, width, channels),
                      (high, height, width, channels))
    config.add_optimization_profile(profile)
    timing_bytes = b""
    if timing_cache_file.is_file():
        timing_bytes = timing_cache_file.read_bytes()
    timing = config.create_timing_cache(timing_bytes)
    if timing is None and timing_bytes:  # unreadable cache file: start an empty one
        LOG.warning("TensorRT timing cache %s is unreadable; starting a new one", timing_cache_file)
        timing = config.create_timing_cache(b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    atomic_write_bytes(timing_cache_file, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


class TensorRTBackend(InferenceBackend):
    """Runs a cached TensorRT engine on CUDA; builds it on first use."""

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        precision: str = "auto",
        device: str = "cuda",
        max_batch: int = 4,
        workspace_bytes: int = 2 << 30,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        reason = tensorrt_unavailable()
        if reason:
            raise BackendUnavailable(reason)
        import tensorrt as trt

        self._trt = trt
        self.cache_dir = Path(cache_dir) if cache_dir is not None else tensorrt_cache_dir()
        model_path = Path(model_path)
        if model_path.suffix == ".engine":
            resolve_inside(self.cache_dir, model_path)  # raises for anything outside the cache
            raise EngineCacheError(f"pass the .pt checkpoint or .onnx file, not {model_path}: engines are found by key")
        self.precision = "fp16" if precision == "auto" else precision
        if self.precision == "fp16":
            build_path = fp16_build_path(trt.__version__, hasattr(trt.BuilderFlag, "FP16"))
        elif self.precision == "fp32":
            build_path = "fp32"
        else:
            raise ValueError(f"precision must be auto, fp32 or fp16, got {precision!r}")
        LOG.info("TensorRT %s: %s build (%s)", trt.__version__, self.precision, build_path)
        onnx_precision = "fp16" if build_path == "strongly-typed-fp16-onnx" else "fp32"
        onnx_path, meta, info = ensure_onnx(model_path, onnx_precision)
        super().__init__(meta)
        self.device = torch.device(device)
        torch.cuda.set_device(self.device)
        gpu_name, capability, sm_count = gpu_identity(self.device)
        batch_profile = (1, 1, max_batch) if info["dynamic_batch"] else (1, 1, 1)
        self.key = EngineKey(
            model_hash=info["model_hash"], gpu_name=gpu_name, compute_capability=capability, sm_count=sm_count,
            tensorrt_version=trt.__version__, precision=self.precision, build_path=build_path,
            input_shape=(meta.input_height, meta.input_width, 3), batch_profile=batch_profile,
        )
        self.gpu_name = gpu_name
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self._load_or_build(onnx_path, workspace_bytes, is_onnx_path(model_path))
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        self._inputs, self._outputs = self._io_tensors()
        self.stream = torch.cuda.Stream(device=self.device)

    def _load_or_build(self, onnx_path: Path, workspace_bytes: int, from_onnx: bool) -> Any:
        engine_file, _ = engine_paths(self.cache_dir, self.key)
        state = cache_state(self.cache_dir, self.key)
        if state is CacheState.HIT:
            engine = self.runtime.deserialize_cuda_engine(read_engine(self.cache_dir, engine_file))
            if engine is not None:
                LOG.info("TensorRT engine loaded from cache %s", engine_file)
                return engine
            state = CacheState.CORRUPT
        if state is not CacheState.MISSING:
            LOG.warning("TensorRT engine cache %s is %s; rebuilding", engine_file, state.value)
            discard(self.cache_dir, self.key)
        LOG.info("building TensorRT engine (this can take a few minutes): %s -> %s", onnx_path, engine_file)
        timing = timing_cache_path(self.cache_dir, self.key.gpu_name, self.key.compute_capability,
                                   self.key.tensorrt_version)
        data = build_serialized_engine(onnx_path, self.key, timing, workspace_bytes)
        write_engine(self.cache_dir, self.key, data)
        engine = self.runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise RuntimeError(f"TensorRT could not deserialize the engine it just built ({engine_file})")
        return engine

    def _io_tensors(self) -> tuple[list[tuple[str, torch.dtype]], list[tuple[str, torch.dtype]]]:
        trt = self._trt
        inputs, outputs = [], []
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            dtype_name = self.engine.get_tensor_dtype(name).name
            if dtype_name not in _TORCH_DTYPES:
                raise RuntimeError(f"TensorRT tensor {name!r} has unsupported dtype {dtype_name}")
            entry = (name, _TORCH_DTYPES[dtype_name])
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                inputs.append(entry)
            else:
                outputs.append(entry)
        if len(inputs) != 1 or len(outputs) != 1 or inputs[0][1] != torch.uint8:
            raise RuntimeError(f"unexpected TensorRT engine I/O: inputs {inputs}, outputs {outputs}")
        return inputs, outputs

    def describe(self) -> str:
        """Backend, GPU, TensorRT version and precision."""
        return f"tensorrt ({self.gpu_name}, TensorRT {self.key.tensorrt_version}, {self.precision})"

    def _execute(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the engine on a device ``uint8`` batch on :attr:`stream`; returns device float32 logits."""
        (in_name, _), (out_name, out_dtype) = self._inputs[0], self._outputs[0]
        low, _, high = self.key.batch_profile
        if not low <= batch.shape[0] <= high:
            raise ValueError(f"tensorrt: batch size {batch.shape[0]} is outside the engine profile {low}..{high}")
        batch = batch.contiguous()
        if not self.context.set_input_shape(in_name, tuple(batch.shape)):
            raise ValueError(f"tensorrt: input shape {tuple(batch.shape)} rejected by the engine")
        output = torch.empty(tuple(self.context.get_tensor_shape(out_name)), dtype=out_dtype, device=self.device)
        self.context.set_tensor_address(in_name, batch.data_ptr())
        self.context.set_tensor_address(out_name, output.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        return output.float()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8`` BGR ``N×H×W×3`` → ``float32`` logits ``N×1×H×W``."""
        self.check_batch(frames)
        with torch.cuda.stream(self.stream):
            batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
            logits = self._execute(batch).cpu()
        self.stream.synchronize()
        return logits.numpy()

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Upload the frame, resize, infer and apply the sigmoid on the GPU."""
        self.check_frame(frame)
        with torch.cuda.stream(self.stream):
            image = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
            image = resize_on_device(image, self.input_size)
            probability = torch.sigmoid(self._execute(image[None]))[0, 0].cpu()
        self.stream.synchronize()
        return probability.numpy()

    def close(self) -> None:
        """Release the execution context and engine."""
        self.context = None
        self.engine = None
