"""How many inference workers the pipeline runs, and how many CPU threads each backend call gets.

On the CPU a small U-Net does not scale well over intra-op threads, so two frames in flight on one
thread each beat one frame on two threads: ``python -m app.bench`` runs the pipeline both ways in
the same run (rows ``threaded-1w`` and ``threaded``; ``docs/benchmarks/app-bench-cpu.json``). So on
CPU backends a file runs two workers and splits the cores between them; GPU backends run one
worker (their calls would only queue on the device).

A live source is latency first: one worker with all the cores, so each frame is inferred as fast as
the cores allow. On 2 cores at 1080p60 that halved the capture → overlay p99 against two workers with
one thread each, for about a fifth fewer frames shown (issue 21, ``docs/benchmarks/issue21/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.backends import REGISTRY, InferenceBackend, capabilities, resolve_backend
from models.cpu import usable_cores

#: Backends whose calls may overlap (declared in engine.backends.registry), e.g. for error messages.
CPU_BACKENDS = tuple(name for name, caps in REGISTRY.items() if caps.concurrent_calls)
#: Inference workers on CPU backends when not given (files: throughput).
DEFAULT_CPU_WORKERS = 2
#: Inference workers on CPU backends when not given, on a live source (latency first).
DEFAULT_LIVE_CPU_WORKERS = 1


@dataclass(frozen=True)
class InferencePlan:
    """Workers and per-call CPU threads for one pipeline."""

    backend: str  #: the backend name the plan was made for (``auto`` resolved)
    workers: int
    threads: int | None  #: CPU threads per backend call; ``None``: the backend's default
    workers_requested: bool = False  #: ``workers`` was asked for, not defaulted

    def workers_for(self, backend: InferenceBackend) -> int:
        """The workers to run on the backend actually built (``auto`` may have fallen back to another).

        A defaulted plan drops to one worker on a backend without concurrent calls; a requested
        count it cannot honour raises ``ValueError``."""
        if self.workers > 1 and not backend.concurrent_calls:
            if self.workers_requested:
                raise ValueError(f"--inference-workers {self.workers}: backend {backend.name} takes one worker")
            return 1
        return self.workers

    def describe(self) -> str:
        """One line for logs and bench reports."""
        threads = "backend default" if self.threads is None else str(self.threads)
        return f"{self.workers} inference worker(s), {threads} thread(s) each"


def plan_inference(
    backend: str, workers: int | None, threads: int | None, cores: int | None = None, live: bool = False
) -> InferencePlan:
    """Workers and threads for ``backend``; explicit ``workers``/``threads`` win over the defaults.

    ``live``: a live source (or a realtime file): by default one worker with all the cores.

    Raises ``ValueError`` for a count below 1, or several workers on a GPU backend."""
    for option, value in (("--inference-workers", workers), ("--threads", threads)):
        if value is not None and value < 1:
            raise ValueError(f"{option} {value}: expected a whole number ≥ 1")
    name = resolve_backend(backend)
    cores = usable_cores() if cores is None else cores
    if not capabilities(name).concurrent_calls:
        if workers is not None and workers > 1:
            raise ValueError(
                f"--inference-workers {workers}: backend {name} runs on a GPU and takes one worker; "
                f"several workers need a CPU backend ({', '.join(CPU_BACKENDS)})"
            )
        return InferencePlan(name, 1, threads, workers is not None)
    default = DEFAULT_LIVE_CPU_WORKERS if live else DEFAULT_CPU_WORKERS
    chosen = workers if workers is not None else max(1, min(default, cores))
    if threads is None and (workers is None or chosen > 1):
        threads = max(1, cores // chosen)
    return InferencePlan(name, chosen, threads, workers is not None)
