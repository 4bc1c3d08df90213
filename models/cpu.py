"""This machine's CPU: the cores this process may use (its affinity mask; physical cores without
hyper-threads), its feature flags, and the identity benchmark and INT8 speed records carry."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def usable_cpus() -> set[int]:
    """Logical CPUs this process may run on (its affinity mask; every CPU where there is none)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """How many logical CPUs this process may run on."""
    return len(usable_cpus())


def physical_cores() -> int:
    """Physical CPU cores usable by this process (hyper-threads not counted)."""
    usable = usable_cpus()
    cores: set[tuple[str, str]] = set()
    try:
        cpu = physical = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines() + [""]:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                cpu = int(value)
            elif key == "physical id":
                physical = value
            elif key == "core id":
                core = value
            elif not key and cpu is not None:
                if cpu in usable:
                    cores.add((physical or "0", core if core is not None else str(cpu)))
                cpu = physical = core = None
    except (OSError, ValueError):
        cores = set()
    return max(1, len(cores) if cores else len(usable))


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string (for benchmark records)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: The feature flags that decide how fast the CPU runs a network (vector width, INT8 dot products,
#: native bfloat16); :func:`cpu_identity` names those present.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags of the first processor (empty when ``cpuinfo`` cannot be read)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
    except OSError:
        pass
    return set()


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU as speed records name it: model name, family/model/stepping and the :data:`SPEED_FLAGS` it has,
    e.g. ``AMD EPYC · family 23 model 1 stepping 2 · avx2 fma``.

    Cloud VMs often report only a brand (``AMD EPYC``) in the model name, so two hosts of different
    generations (one with AVX-512 VNNI and bfloat16, one with AVX2 only, 2-4x apart on the same network)
    look alike by name; their identities differ."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if not key and fields:
                break  # the first processor is enough
            if key in ("cpu family", "model", "stepping") and key not in fields:
                fields[key] = value.strip()
    except OSError:
        pass
    parts = [cpu_model_name(cpuinfo)]
    if fields:
        parts.append(" ".join(f"{name} {fields[key]}" for key, name in
                              (("cpu family", "family"), ("model", "model"), ("stepping", "stepping")) if key in fields))
    flags = cpu_flags(cpuinfo)
    parts.append(" ".join(flag for flag in SPEED_FLAGS if flag in flags) or "no AVX2 or newer SIMD flags")
    return " · ".join(parts)
