"""Latency measurement of one runner: warm-up by time, then at least N iterations and at least T seconds.

The method is trtexec's (TensorRT developer guide, "trtexec" section): warm up for a fixed time (200 ms), then
time at least ``min_iters`` iterations AND at least ``min_time_s`` seconds, and report min, mean, median, p90,
p95, p99 and max plus throughput. Inputs are bound once (``Runner.bind``) so a GPU backend times
device-resident inputs with no host-device copy inside the timed region; each iteration ends with
``Runner.synchronize()`` so queued device work is inside the time. Runners never time themselves: this module is
the one timing loop (Polygraphy keeps its timing outside runners too).

Every report records what makes a number comparable: batch, threads, backend description and the machine
(CPU model, GPU and driver when present, library versions).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ofb_deploy.data.readers import CalibrationReader, Feed
from ofb_deploy.engines.base import Runner
from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.threads import available_cores

log = logging.getLogger(__name__)

PERCENTILES = (50, 90, 95, 99)


@dataclass
class LatencyReport:
    """Statistics of per-iteration wall times of one runner on one batch size (all times in milliseconds).

    Args:
        backend: the runner's backend name.
        batch_size: images per iteration.
        iterations: timed iterations.
        total_s: total timed seconds (sum of iteration times).
        min_ms: fastest iteration.
        mean_ms: mean iteration.
        median_ms: median (p50) iteration.
        p90_ms: 90th percentile.
        p95_ms: 95th percentile.
        p99_ms: 99th percentile.
        max_ms: slowest iteration.
        std_ms: standard deviation.
        throughput: images per second at the median latency (``batch_size * 1000 / median_ms``).
        warmup_s: warm-up time spent before timing.
        runner: the runner's ``describe()`` (library version, device, precision, threads ...).
        samples_ms: the raw iteration times (kept in memory, left out of ``to_dict`` unless asked).
    """

    backend: str
    batch_size: int
    iterations: int
    total_s: float
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    throughput: float
    warmup_s: float = 0.0
    runner: dict[str, Any] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def p50_ms(self) -> float:
        """Alias of ``median_ms`` (the report schema's name)."""
        return self.median_ms

    @classmethod
    def from_samples(
        cls,
        samples_s: list[float] | np.ndarray,
        *,
        backend: str,
        batch_size: int,
        warmup_s: float = 0.0,
        runner: dict[str, Any] | None = None,
    ) -> LatencyReport:
        """Statistics of raw iteration times.

        Args:
            samples_s: iteration times in seconds (at least one).
            backend: backend name.
            batch_size: images per iteration.
            warmup_s: warm-up time spent before timing.
            runner: the runner's description.
        """
        ms = np.asarray(samples_s, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ConfigError("no timed iterations")
        p50, p90, p95, p99 = (float(v) for v in np.percentile(ms, PERCENTILES))
        return cls(
            backend=backend,
            batch_size=batch_size,
            iterations=int(ms.size),
            total_s=float(ms.sum() / 1e3),
            min_ms=float(ms.min()),
            mean_ms=float(ms.mean()),
            median_ms=p50,
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=float(ms.max()),
            std_ms=float(ms.std()),
            throughput=float(batch_size * 1e3 / p50) if p50 > 0 else float("inf"),
            warmup_s=warmup_s,
            runner=dict(runner or {}),
            samples_ms=[float(v) for v in ms],
        )

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """JSON-ready dict (with ``p50_ms`` next to ``median_ms``; raw samples only when ``samples``)."""
        out = asdict(self)
        if not samples:
            out.pop("samples_ms")
        out["p50_ms"] = self.median_ms
        return out

    def summary(self) -> str:
        """One line for logs: batch, median, p90, p99 and throughput."""
        return (
            f"{self.backend} batch {self.batch_size}: median {self.median_ms:.3f} ms, p90 {self.p90_ms:.3f}, "
            f"p99 {self.p99_ms:.3f}, {self.throughput:.1f} img/s ({self.iterations} iters)"
        )


def first_feed(source: Feed | CalibrationReader) -> Feed:
    """The feed to time: ``source`` itself when it is a dict, else the first feed of a reader.

    Args:
        source: a feed (input name to array) or anything with ``get_next()``.
    """
    if isinstance(source, dict):
        feed = source
    elif isinstance(source, CalibrationReader):
        if hasattr(source, "rewind"):
            source.rewind()
        feed = source.get_next()
        if feed is None:
            raise ConfigError("the reader gave no batch to time")
    else:
        raise ConfigError(f"expected a feed dict or a reader, got {type(source).__name__}")
    if not feed:
        raise ConfigError("empty feed")
    return {k: np.ascontiguousarray(v) for k, v in feed.items()}


def feed_batch_size(feed: Feed) -> int:
    """Leading dimension of the feed's first input."""
    return int(next(iter(feed.values())).shape[0])


def time_iterations(runner: Runner, *, min_iters: int, min_time_s: float, max_iters: int | None = None) -> list[float]:
    """Run the bound inputs until at least ``min_iters`` iterations and ``min_time_s`` seconds have passed.

    Args:
        runner: an active runner with bound inputs.
        min_iters: fewest iterations.
        min_time_s: fewest seconds.
        max_iters: stop after this many iterations even if ``min_time_s`` is not reached (``None``: no cap).
    """
    samples: list[float] = []
    clock = time.perf_counter
    start = clock()
    while len(samples) < min_iters or clock() - start < min_time_s:
        t0 = clock()
        runner.run_bound()
        runner.synchronize()
        samples.append(clock() - t0)
        if max_iters is not None and len(samples) >= max_iters:
            break
    return samples


def warm_up(runner: Runner, warmup_s: float) -> float:
    """Run the bound inputs for ``warmup_s`` seconds (at least once); return the time spent."""
    start = time.perf_counter()
    while True:
        runner.run_bound()
        runner.synchronize()
        spent = time.perf_counter() - start
        if spent >= warmup_s:
            return spent


def check_timing_args(warmup_s: float, min_iters: int, min_time_s: float) -> None:
    """Reject negative times and fewer than one iteration with one line."""
    if warmup_s < 0 or min_time_s < 0:
        raise ConfigError(f"warm-up and timing seconds must be >= 0, got {warmup_s} and {min_time_s}")
    if min_iters < 1:
        raise ConfigError(f"min_iters must be >= 1, got {min_iters}")


def measure_latency(
    runner: Runner,
    feed: Feed | CalibrationReader,
    *,
    warmup_s: float = 0.2,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    max_iters: int | None = None,
) -> LatencyReport:
    """Time ``runner`` on one batch: warm up by time, then >= ``min_iters`` iterations and >= ``min_time_s``.

    The runner is activated (and deactivated after) when it is not active yet.

    Args:
        runner: any ``Runner``.
        feed: the batch to time, or a reader whose first batch is timed.
        warmup_s: seconds of untimed warm-up (trtexec: 0.2).
        min_iters: fewest timed iterations (trtexec: 10).
        min_time_s: fewest timed seconds (trtexec: 3).
        max_iters: optional cap on timed iterations.
    """
    check_timing_args(warmup_s, min_iters, min_time_s)
    batch = first_feed(feed)
    owns = not runner.is_active
    if owns:
        runner.activate()
    try:
        runner.bind(batch)
        spent = warm_up(runner, warmup_s)
        samples = time_iterations(runner, min_iters=min_iters, min_time_s=min_time_s, max_iters=max_iters)
        report = LatencyReport.from_samples(
            samples,
            backend=runner.backend,
            batch_size=feed_batch_size(batch),
            warmup_s=spent,
            runner=describe_runner(runner),
        )
    finally:
        if owns:
            runner.deactivate()
    log.debug(report.summary())
    return report


def describe_runner(runner: Runner) -> dict[str, Any]:
    """The runner's own description plus the thread counts that shape CPU timings."""
    import torch

    desc = dict(runner.describe())
    desc.setdefault("torch_threads", torch.get_num_threads())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            desc.setdefault(var, os.environ[var])
    return desc


@functools.lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """CPU model and cores, GPU and driver when present, and library versions (``ofb-deploy info``)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    info["cpu_affinity"] = available_cores()
    driver = gpu_driver()
    if driver:
        info["gpu_driver"] = driver
    info["libraries"] = collect_info()
    info["gpu"] = info["libraries"].get("cuda devices", "none")
    return info


def collect_info() -> dict[str, str]:
    """Library versions, ONNX Runtime providers and CUDA devices as plain strings (``ofb-deploy info``)."""
    import torch

    from ofb_deploy.engines.registry import probe_module

    info = {"python": platform.python_version(), "platform": platform.platform()}
    for module in ("ofb_deploy", "torch", "timm", "onnx", "onnxruntime", "tensorrt", "tensorrt_rtx"):
        version, why = probe_module(module)
        info[module] = version or f"not available ({why})"
    with contextlib.suppress(ImportError):
        import onnxruntime as ort

        info["onnxruntime providers"] = ", ".join(ort.get_available_providers())
    if torch.cuda.is_available():
        info["cuda devices"] = "; ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        info["cuda devices"] = "none"
    info["cpu threads"] = str(torch.get_num_threads())
    return info


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_driver() -> str | None:
    """NVIDIA driver version from ``nvidia-smi``, or ``None`` without one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None
