"""The stand-in ``tensorrt`` module and device layer used by ``tests/test_tensorrt_contract.py``.

A TEST DOUBLE, NOT TENSORRT: it implements only names and parameters found in the TensorRT 10.13 type stubs
(``tools/tensorrt_surface.json``; the contract test checks that), and a TensorRT 11.x variant (no
``BuilderFlag.FP16``, networks always strongly typed). See the contract test's docstring for what it can
and cannot prove.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import json
import types
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import onnx
import torch

SIZE = (64, 64)
ENGINE_MAGIC = "stand-in engine"
TIMING_MAGIC = b"stand-in timing cache:"


# ---------------------------------------------------------------------------------------------
# The stand-in tensorrt module (only documented names; the contract test checks them against the stub)
# ---------------------------------------------------------------------------------------------
@dataclass
class Journal:
    """What the stand-in saw, and the failures it is told to inject (not part of the module)."""

    loggers: int = 0
    builds: list[dict[str, Any]] = field(default_factory=list)
    parsed_paths: list[str] = field(default_factory=list)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    streams: list[int] = field(default_factory=list)
    refuse_timing_cache: bool = False
    timing_cache_missing: bool = False


class _Enum:
    name: str

    def __init__(self, name: str, value: int) -> None:
        self.name, self._value = name, value

    def __int__(self) -> int:
        return self._value

    def __repr__(self) -> str:
        return self.name


def _enum(class_name: str, names: list[str]) -> type:
    cls = type(class_name, (_Enum,), {})
    for value, name in enumerate(names):
        setattr(cls, name, cls(name, value))
    return cls


class _HostMemory(bytes):
    """``IHostMemory``: a buffer (``bytes`` here, so ``memoryview`` works on every Python)."""

    @property
    def nbytes(self) -> int:
        return len(self)


class StandIn:
    """Base of the stand-in classes. ``make_tensorrt`` derives one class per module and name from each, with
    the module (``_trt``: its version, enums and sibling classes) and the :class:`Journal` as class attributes."""

    _trt: Any
    _journal: Journal

    @classmethod
    def _major(cls) -> int:
        return int(cls._trt.__version__.split(".")[0])


class ILoggerStandIn(StandIn):
    pass


class LoggerStandIn(ILoggerStandIn):
    Severity = _enum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])
    WARNING: ClassVar[Any] = Severity.WARNING

    def __init__(self, min_severity: Any = None) -> None:
        self._journal.loggers += 1


class DimsStandIn(tuple, StandIn):
    def __new__(cls, shape: Any = ()) -> Any:
        return super().__new__(cls, [int(v) for v in shape])


class ParserErrorStandIn(StandIn):
    def __init__(self, text: str) -> None:
        self._text = text

    def desc(self) -> str:
        return self._text

    def __str__(self) -> str:
        return self._text


class INetworkDefinitionStandIn(StandIn):
    num_inputs: int = 0
    num_outputs: int = 0

    def __init__(self, flags: int) -> None:
        typed_bit = 1 << int(self._trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        self._strongly_typed = self._major() >= 11 or bool(flags & typed_bit)
        self._graph: dict[str, Any] | None = None


class OnnxParserStandIn(StandIn):
    num_errors: int = 0

    def __init__(self, network: Any, logger: Any) -> None:
        assert isinstance(logger, self._trt.ILogger)
        self._network, self._errors = network, []

    def parse_from_file(self, model: str) -> bool:
        self._journal.parsed_paths.append(model)
        try:
            proto = onnx.load(model)
        except Exception as error:
            self._errors.append(self._trt.ParserError(f"cannot read {model}: {error}"))
            self.num_errors = len(self._errors)
            return False
        floats = {init.data_type for init in proto.graph.initializer if init.data_type in (1, 10)}
        self._network._graph = {
            "input": proto.graph.input[0].name, "output": proto.graph.output[0].name,
            "weights": "fp16" if floats == {10} else "fp32",
        }
        self._network.num_inputs = self._network.num_outputs = 1
        return True

    def get_error(self, index: int) -> Any:
        return self._errors[index]


class IOptimizationProfileStandIn(StandIn):
    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
        assert all(isinstance(dims, self._trt.Dims) for dims in (min, opt, max))
        self._shape = (input, tuple(min), tuple(opt), tuple(max))


class ITimingCacheStandIn(StandIn):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def serialize(self) -> _HostMemory:
        return _HostMemory(self._data + b"+1")


class IBuilderConfigStandIn(StandIn):
    def __init__(self) -> None:
        self._flags = {int(self._trt.BuilderFlag.TF32)}  # TF32 is on by default in TensorRT
        self._profiles: list[Any] = []
        self._timing: Any = None

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        assert pool is self._trt.MemoryPoolType.WORKSPACE and pool_size > 0

    def set_flag(self, flag: Any) -> None:
        self._flags.add(int(flag))

    def clear_flag(self, flag: Any) -> None:
        self._flags.discard(int(flag))

    def get_flag(self, flag: Any) -> bool:
        return int(flag) in self._flags

    def add_optimization_profile(self, profile: Any) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache: bytes) -> Any:
        data = bytes(serialized_timing_cache)
        if data and not data.startswith(TIMING_MAGIC):
            return None
        return self._trt.ITimingCache(data or TIMING_MAGIC)

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        if self._journal.refuse_timing_cache:
            return False
        self._timing = cache
        return True

    def get_timing_cache(self) -> Any:
        return None if self._journal.timing_cache_missing else self._timing


class BuilderStandIn(StandIn):
    platform_has_tf32: bool = True

    def __init__(self, logger: Any) -> None:
        assert isinstance(logger, self._trt.ILogger)

    def create_network(self, flags: int = 0) -> Any:
        return self._trt.INetworkDefinition(flags)

    def create_builder_config(self) -> Any:
        return self._trt.IBuilderConfig()

    def create_optimization_profile(self) -> Any:
        return self._trt.IOptimizationProfile()

    def build_serialized_network(self, network: Any, config: Any) -> _HostMemory | None:
        graph, flags = network._graph, self._trt.BuilderFlag
        fp16_flag = "FP16" in vars(flags) and config.get_flag(flags.FP16)
        if graph is None or len(config._profiles) != 1 or (network._strongly_typed and fp16_flag):
            return None  # TensorRT logs the error and returns None
        if network._strongly_typed:
            compute = graph["weights"]
        else:
            compute = "fp16" if fp16_flag else ("tf32" if config.get_flag(flags.TF32) else "fp32")
        name, low, _, high = config._profiles[0]._shape
        record = {"strongly_typed": network._strongly_typed, "compute": compute, "input": name,
                  "output": graph["output"], "low": list(low), "high": list(high), "version": self._trt.__version__}
        self._journal.builds.append({**record, "timing_cache_attached": config._timing is not None})
        return _HostMemory(json.dumps({"magic": ENGINE_MAGIC, **record}).encode())


class IExecutionContextStandIn(StandIn):
    def __init__(self, engine: Any) -> None:
        self._engine, self._shape, self._addresses = engine, None, {}

    def set_input_shape(self, name: str, shape: Any) -> bool:
        spec = self._engine._spec
        shape = tuple(shape)
        ok = (name == spec["input"] and len(shape) == 4 and shape[1:] == tuple(spec["low"][1:])
              and spec["low"][0] <= shape[0] <= spec["high"][0])
        if ok:
            self._shape = shape
            self._journal.input_shapes.append(shape)
        return ok

    def get_tensor_shape(self, name: str) -> Any:
        n, height, width, _ = self._shape
        return self._trt.Dims((n, 1, height, width) if name == self._engine._spec["output"] else self._shape)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._addresses[name] = memory
        return memory != 0

    def execute_async_v3(self, stream_handle: int) -> bool:
        self._journal.streams.append(stream_handle)
        spec = self._engine._spec
        n, height, width, _ = self._shape
        count = n * height * width * 3
        frames = np.ctypeslib.as_array((ctypes.c_uint8 * count).from_address(self._addresses[spec["input"]]))
        logits = np.ctypeslib.as_array((ctypes.c_float * (count // 3)).from_address(self._addresses[spec["output"]]))
        logits[:] = stand_in_logits(frames.reshape(n, height, width, 3)).ravel()
        return True


class ICudaEngineStandIn(StandIn):
    num_io_tensors: int = 2

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec

    def get_tensor_name(self, index: int) -> str:
        return (self._spec["input"], self._spec["output"])[index]

    def get_tensor_mode(self, name: str) -> Any:
        modes = self._trt.TensorIOMode
        return modes.INPUT if name == self._spec["input"] else modes.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return self._trt.DataType.UINT8 if name == self._spec["input"] else self._trt.DataType.FLOAT

    def create_execution_context(self) -> Any:
        return self._trt.IExecutionContext(self)


class RuntimeStandIn(StandIn):
    def __init__(self, logger: Any) -> None:
        assert isinstance(logger, self._trt.ILogger)

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> Any:
        try:
            spec = json.loads(bytes(serialized_engine))
        except ValueError:
            return None
        if spec.get("magic") != ENGINE_MAGIC or spec["version"] != self._trt.__version__:
            return None
        return self._trt.ICudaEngine(spec)


#: ``tensorrt`` class name → its stand-in base, in dependency order (``Logger`` derives from the module's ``ILogger``).
STAND_INS: dict[str, type] = {
    "ILogger": ILoggerStandIn, "Logger": LoggerStandIn, "Dims": DimsStandIn, "ParserError": ParserErrorStandIn,
    "INetworkDefinition": INetworkDefinitionStandIn, "OnnxParser": OnnxParserStandIn,
    "IOptimizationProfile": IOptimizationProfileStandIn, "ITimingCache": ITimingCacheStandIn,
    "IBuilderConfig": IBuilderConfigStandIn, "Builder": BuilderStandIn, "IExecutionContext": IExecutionContextStandIn,
    "ICudaEngine": ICudaEngineStandIn, "Runtime": RuntimeStandIn,
}


def make_tensorrt(version: str, journal: Journal) -> types.ModuleType:
    """A stand-in ``tensorrt`` module of ``version`` (10.x: FP16 flag, weak typing allowed; 11.x: neither)."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    trt.DataType = _enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8"])
    trt.TensorIOMode = _enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    trt.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH", "STRONGLY_TYPED"])
    trt.BuilderFlag = _enum("BuilderFlag", (["FP16"] if major < 11 else []) + ["TF32", "DISABLE_TIMING_CACHE"])
    trt.MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE"])
    for name, base in STAND_INS.items():
        bases = (base, trt.ILogger) if name == "Logger" else (base,)
        setattr(trt, name, type(name, bases, {"_trt": trt, "_journal": journal}))
    trt.IHostMemory = _HostMemory
    return trt


def stand_in_members(cls: type) -> dict[str, Any]:
    """Every member a stand-in class defines, its stand-in bases' included (what the stub check covers)."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ == __name__ and klass not in (_Enum, StandIn):
            members.update(vars(klass))
    return members


def stand_in_logits(frames: np.ndarray) -> np.ndarray:
    """What the stand-in "engine" computes: a simple function of the frame, ``N×1×H×W`` float32."""
    return (frames.astype(np.float32).mean(axis=-1) / 32.0 - 4.0)[:, None]


class HostDevice:
    """Stand-in device layer: tensors in host memory, a fake stream handle, nothing asynchronous."""

    device = torch.device("cpu")
    STREAM = 0x5EED

    def __init__(self) -> None:
        self.synchronized = 0

    def identity(self) -> tuple[str, str, int]:
        return "Stand-in GPU", "9.0", 132

    def stream_handle(self) -> int:
        return self.STREAM

    def on_stream(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        self.synchronized += 1
