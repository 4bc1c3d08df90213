"""TensorRT backend: builds (once, cached) and runs an FP16 engine from the exported ONNX graph.

Written against the TensorRT 10.x Python API, with the TensorRT 11 differences handled. Nothing
here has run on a real TensorRT yet (see engine/README.md, "What has run where"); the glue is
exercised on the CPU against a stand-in module in ``tests/test_tensorrt_contract.py`` and
type-checked against ``typings/tensorrt`` (``python -m mypy``).

* build: ``Builder.create_network(flags)`` (``STRONGLY_TYPED`` for strongly typed builds),
  ``OnnxParser.parse_from_file(<absolute path>)`` with every ``get_error(i)`` reported,
  ``create_builder_config``, ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, …)``, one
  optimisation profile ``1/1/MAX_BATCH`` over the batch axis, ``clear_flag(BuilderFlag.TF32)``
  for fp32, a timing cache (``set_timing_cache``'s bool and ``get_timing_cache()``'s ``None``
  checked), ``build_serialized_network``;
* FP16: TensorRT 10.x sets ``BuilderFlag.FP16`` on the FP32 graph; TensorRT >= 11 has no
  precision flags, so the FP16 ONNX graph (float16 weights, ``uint8`` in, ``float32`` out)
  is parsed into a strongly typed network (:func:`engine.trt_cache.fp16_build_path`);
* cache: the engine is written first (atomically, :func:`engine.trt_cache.write_engine`),
  the timing cache after it; a timing-cache failure only logs a warning;
* run: the tensor-name API only (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
  ``get_tensor_dtype``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``);
  batches above ``MAX_BATCH`` are run in chunks.

Device memory and streams come from a :class:`~engine.backends.cuda_device.DeviceLayer`
(PyTorch CUDA tensors and one stream in production).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.backends.base import BackendUnavailable, InferenceBackend
from engine.backends.cuda_device import NO_CUDA, DeviceLayer, TorchCudaDevice
from engine.backends.torch_backend import resize_on_device
from engine.onnx_cache import ensure_onnx
from engine.onnx_meta import INPUT_NAME
from engine.paths import tensorrt_cache_dir
from engine.trt_cache import (
    MAX_BATCH,
    CacheState,
    EngineCacheError,
    EngineKey,
    cache_state,
    discard,
    engine_paths,
    fp16_build_path,
    read_engine,
    resolve_inside,
    tensorrt_major,
    timing_cache_path,
    write_engine,
)
from models.atomic_io import atomic_write_bytes

if TYPE_CHECKING:
    import tensorrt as trt

LOG = logging.getLogger("engine")
INSTALL_HINT = "tensorrt is not installed: pip install -r requirements-gpu.txt"
_TORCH_DTYPES = {"UINT8": torch.uint8, "FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32}
#: The one ``trt.Logger`` of this process, per ``tensorrt`` module object (TensorRT keeps one logger per process).
_LOGGER: list[tuple[ModuleType, trt.ILogger]] = []


def tensorrt_unavailable(need_cuda: bool = True) -> str | None:
    """``None`` if the TensorRT backend can run here, else the reason (``need_cuda=False``: the module only)."""
    if importlib.util.find_spec("tensorrt") is None:
        return INSTALL_HINT
    try:
        import tensorrt as trt
    except Exception as error:  # ImportError, or OSError when libnvinfer is missing
        return f"tensorrt could not be imported ({error}): pip install -r requirements-gpu.txt"
    if not hasattr(trt, "Builder"):  # e.g. a stray namespace package or type stubs only
        return f"{INSTALL_HINT} (the 'tensorrt' found has no runtime)"
    if need_cuda and not torch.cuda.is_available():
        return NO_CUDA
    return None


def trt_logger() -> trt.ILogger:
    """The process-wide ``trt.Logger`` (created on first use, at WARNING)."""
    import tensorrt as trt

    for module, logger in _LOGGER:
        if module is trt:
            return logger
    logger = trt.Logger(trt.Logger.WARNING)
    _LOGGER[:] = [(trt, logger)]
    return logger


def _parse_onnx(network: trt.INetworkDefinition, onnx_path: Path) -> None:
    """Parse ``onnx_path`` (by absolute path, so external data next to it resolves) into ``network``."""
    import tensorrt as trt

    parser = trt.OnnxParser(network, trt_logger())
    path = onnx_path.resolve()
    if not parser.parse_from_file(str(path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {path}:\n  " + "\n  ".join(errors or ["(no details)"]))


def _attach_timing_cache(config: trt.IBuilderConfig, timing_cache_file: Path) -> trt.ITimingCache | None:
    """Load the timing cache file (or start an empty cache) into ``config``; failures only log.

    Returns the attached cache, which the caller keeps alive until the build is done."""
    data = b""
    if timing_cache_file.is_file():
        try:
            data = timing_cache_file.read_bytes()
        except OSError as error:
            LOG.warning("TensorRT timing cache %s could not be read (%s); starting a new one", timing_cache_file, error)
    for attempt in ((data, b"") if data else (b"",)):
        timing = config.create_timing_cache(attempt)
        if timing is not None and config.set_timing_cache(timing, False):
            return timing
        LOG.warning("TensorRT refused the %s timing cache%s", "stored" if attempt else "new empty",
                    f" {timing_cache_file}" if attempt else "")
    LOG.warning("building without a timing cache")
    return None


def serialized_timing_cache(config: trt.IBuilderConfig) -> bytes | None:
    """The builder config's timing cache as bytes, or ``None`` when there is none to save."""
    timing = config.get_timing_cache()
    if timing is None:
        return None
    memory = timing.serialize()
    if memory is None:
        return None
    data = bytes(memoryview(memory))
    return data or None


def build_serialized_engine(
    onnx_path: Path,
    key: EngineKey,
    timing_cache_file: Path,
    workspace_bytes: int = 2 << 30,
) -> tuple[bytes, bytes | None]:
    """Build a serialized engine for ``key`` from ``onnx_path`` (minutes on first build).

    Returns ``(engine bytes, timing cache bytes or None)``; the caller stores the engine first."""
    import tensorrt as trt

    builder = trt.Builder(trt_logger())
    flags = 0
    strongly_typed = key.build_path == "strongly-typed-fp16-onnx" or tensorrt_major(trt.__version__) >= 11
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    _parse_onnx(network, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if key.build_path == "fp16-flag":
        config.set_flag(trt.BuilderFlag.FP16)
    elif key.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default; TF32 fails the fp32 parity tolerance
    height, width, channels = key.input_shape
    low, opt, high = key.batch_profile
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, trt.Dims([low, height, width, channels]), trt.Dims([opt, height, width, channels]),
                      trt.Dims([high, height, width, channels]))
    config.add_optimization_profile(profile)
    timing = _attach_timing_cache(config, timing_cache_file)  # kept alive until the build is done
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    engine = bytes(memoryview(serialized))
    saved = serialized_timing_cache(config) if timing is not None else None
    return engine, saved


def store_build(cache_dir: Path, key: EngineKey, engine: bytes, timing: bytes | None, timing_file: Path) -> Path:
    """Write the engine (atomically, with its sidecar) and then the timing cache; a timing-cache
    write failure is logged and does not lose the engine. Returns the engine path."""
    path = write_engine(cache_dir, key, engine)
    if timing is None:
        LOG.warning("TensorRT returned no timing cache; %s not updated", timing_file)
        return path
    try:
        atomic_write_bytes(timing_file, timing)
    except OSError as error:
        LOG.warning("TensorRT timing cache %s could not be written (%s); the engine %s is kept",
                    timing_file, error, path)
    return path


class TensorRTBackend(InferenceBackend):
    """Runs a cached TensorRT engine on CUDA; builds it on first use."""

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        precision: str = "auto",
        device: str = "cuda",
        workspace_bytes: int = 2 << 30,
        cache_dir: str | os.PathLike[str] | None = None,
        device_layer: DeviceLayer | None = None,
    ) -> None:
        """``device_layer``: where tensors and the stream come from (default: :class:`TorchCudaDevice` on ``device``)."""
        reason = tensorrt_unavailable(need_cuda=device_layer is None)
        if reason:
            raise BackendUnavailable(reason)
        import tensorrt as trt

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
        self.cuda = device_layer if device_layer is not None else TorchCudaDevice(device)
        self.device = self.cuda.device
        gpu_name, capability, sm_count = self.cuda.identity()
        self.max_batch = MAX_BATCH if info["dynamic_batch"] else 1
        self.key = EngineKey(
            model_hash=info["model_hash"], gpu_name=gpu_name, compute_capability=capability, sm_count=sm_count,
            tensorrt_version=trt.__version__, precision=self.precision, build_path=build_path,
            input_shape=(meta.input_height, meta.input_width, 3), batch_profile=(1, 1, self.max_batch),
        )
        self.gpu_name = gpu_name
        self.runtime = trt.Runtime(trt_logger())
        engine = self._load_or_build(onnx_path, workspace_bytes)
        context = engine.create_execution_context()
        if context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        self.engine: trt.ICudaEngine | None = engine
        self.context: trt.IExecutionContext | None = context
        self._inputs, self._outputs = self._io_tensors(engine)

    def _load_or_build(self, onnx_path: Path, workspace_bytes: int) -> trt.ICudaEngine:
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
        timing_file = timing_cache_path(self.cache_dir, self.key.gpu_name, self.key.compute_capability,
                                        self.key.tensorrt_version)
        data, timing = build_serialized_engine(onnx_path, self.key, timing_file, workspace_bytes)
        store_build(self.cache_dir, self.key, data, timing, timing_file)
        engine = self.runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise RuntimeError(f"TensorRT could not deserialize the engine it just built ({engine_file})")
        return engine

    @staticmethod
    def _io_tensors(engine: trt.ICudaEngine) -> tuple[list[tuple[str, torch.dtype]], list[tuple[str, torch.dtype]]]:
        import tensorrt as trt

        inputs, outputs = [], []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            dtype_name = engine.get_tensor_dtype(name).name
            if dtype_name not in _TORCH_DTYPES:
                raise RuntimeError(f"TensorRT tensor {name!r} has unsupported dtype {dtype_name}")
            entry = (name, _TORCH_DTYPES[dtype_name])
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
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
        """Run a device ``uint8`` batch in chunks of at most :attr:`max_batch`; device float32 logits."""
        if batch.shape[0] > self.max_batch:
            return torch.cat([self._execute(batch[i : i + self.max_batch])
                              for i in range(0, batch.shape[0], self.max_batch)])
        context = self.context
        if context is None:
            raise RuntimeError("tensorrt: the backend is closed")
        (in_name, _), (out_name, out_dtype) = self._inputs[0], self._outputs[0]
        batch = batch.contiguous()
        if not context.set_input_shape(in_name, tuple(batch.shape)):
            raise ValueError(f"tensorrt: input shape {tuple(batch.shape)} rejected by the engine")
        dims = context.get_tensor_shape(out_name)
        output = torch.empty([dims[i] for i in range(len(dims))], dtype=out_dtype, device=self.device)
        for name, tensor in ((in_name, batch), (out_name, output)):
            if not context.set_tensor_address(name, tensor.data_ptr()):
                raise RuntimeError(f"TensorRT refused the device address of tensor {name!r}")
        if not context.execute_async_v3(self.cuda.stream_handle()):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        return output.float()

    def infer_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8`` BGR ``N×H×W×3`` on the device → ``float32`` logits on the device; call inside :meth:`stream_context`."""
        return self._execute(frames)

    def stream_context(self) -> contextlib.AbstractContextManager[None]:
        """The backend's CUDA stream as PyTorch's current stream (the GPU frame path's torch ops share it)."""
        return self.cuda.on_stream()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8`` BGR ``N×H×W×3`` → ``float32`` logits ``N×1×H×W`` (any N; run in chunks of :attr:`max_batch`)."""
        self.check_batch(frames)
        with self.cuda.on_stream():
            batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
            logits = self._execute(batch).cpu()
        self.cuda.synchronize()
        return logits.numpy()

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Upload the frame, resize, infer and apply the sigmoid on the device."""
        self.check_frame(frame)
        with self.cuda.on_stream():
            image = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
            image = resize_on_device(image, self.input_size)
            probability = torch.sigmoid(self._execute(image[None]))[0, 0].cpu()
        self.cuda.synchronize()
        return probability.numpy()

    def close(self) -> None:
        """Release the execution context and engine."""
        self.context = None
        self.engine = None
