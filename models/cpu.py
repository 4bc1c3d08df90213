"""How many CPU cores this process may use (its affinity mask; physical cores without hyper-threads)."""

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
