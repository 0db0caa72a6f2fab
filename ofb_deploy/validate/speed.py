"""Latency pass of ``validate_run``: dense vs subnet on each backend and batch, interleaved in this process.

For every backend and precision built for both roles (and eager PyTorch on the model folders), both runners are
activated once and timed with ``measure_interleaved`` at each batch size on real validation images. The result
per backend key and batch (``results.PairLatency``) holds both ``LatencyReport``s and the speedup (dense median /
subnet median).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from ofb_deploy.artifacts import RunDir
from ofb_deploy.engines.registry import CPU_BACKENDS, make_runner
from ofb_deploy.errors import OfbError
from ofb_deploy.models.io import INPUT_NAME
from ofb_deploy.timing.interleaved import measure_interleaved
from ofb_deploy.utils.threads import cpu_threads
from ofb_deploy.validate.config import ValidateConfig, latency_key
from ofb_deploy.validate.results import BackendLatency, Failure, LatencyStats, PairLatency
from ofb_deploy.validate.validate import EngineFile

log = logging.getLogger(__name__)


def batch_feed(images: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """The first ``batch`` images as a feed (repeated when there are fewer images than that)."""
    if len(images) >= batch:
        return {INPUT_NAME: np.ascontiguousarray(images[:batch])}
    reps = -(-batch // len(images))
    return {INPUT_NAME: np.ascontiguousarray(np.concatenate([images] * reps)[:batch])}


def latency_pairs(
    run_dir: RunDir, engines: list[EngineFile], config: ValidateConfig
) -> dict[str, tuple[str, str, Path, Path]]:
    """Backend key to ``(backend, precision, dense target, subnet target)`` for pairs built for both roles."""
    by_kind: dict[tuple[str, str], dict[str, Path]] = {}
    for engine in engines:
        by_kind.setdefault((engine.backend, engine.precision), {})[engine.role] = engine.path
    pairs = {}
    if config.backends is None or "torch" in config.backends:
        pairs["torch"] = ("torch", "fp32", run_dir.model_dir("dense"), run_dir.model_dir("subnet"))
    for (backend, precision), paths in by_kind.items():
        if "dense" in paths and "subnet" in paths:
            pairs[latency_key(backend, precision)] = (backend, precision, paths["dense"], paths["subnet"])
    return pairs


def time_all(
    run_dir: RunDir,
    reader: Any,
    engines: list[EngineFile],
    config: ValidateConfig,
    progress: Progress,
    flops_ratio: float,
) -> dict[str, BackendLatency]:
    """Interleaved dense-vs-subnet latency per backend key and batch (batch keys are strings, as in JSON).

    Args:
        run_dir: the run.
        reader: validation reader (its images are the timed inputs).
        engines: runnable engines.
        config: batches, threads and timing settings.
        progress: rich progress to report on.
        flops_ratio: dense MACs / subnet MACs (for ``speedup_per_flops``).
    """
    pairs = latency_pairs(run_dir, engines, config)
    task = progress.add_task("validate latency", total=len(pairs) * len(config.batches), info="")
    out: dict[str, BackendLatency] = {}
    for key, (backend, precision, dense, subnet) in pairs.items():
        progress.update(task, info=key)
        try:
            out[key] = _time_pair(
                backend, precision, (dense, subnet), reader.images, config, flops_ratio, progress, task
            )
        except OfbError as exc:
            log.warning("latency of %s skipped: %s", key, exc)
            out[key] = Failure(error=str(exc))
    return out


def _time_pair(
    backend: str,
    precision: str,
    targets: tuple[Path, Path],
    images: np.ndarray,
    config: ValidateConfig,
    flops_ratio: float,
    progress: Progress,
    task: Any,
) -> dict[str, PairLatency | Failure]:
    threads = cpu_threads(config.threads) if backend in CPU_BACKENDS else None
    runners = {
        role: make_runner(backend, target, precision, threads=threads, name=role)
        for role, target in zip(("dense", "subnet"), targets, strict=True)
    }
    per_batch: dict[str, PairLatency | Failure] = {}
    for runner in runners.values():
        runner.activate()
    try:
        for batch in config.batches:
            progress.advance(task)
            try:
                result = measure_interleaved(
                    runners,
                    batch_feed(images, batch),
                    rounds=config.rounds,
                    warmup_s=config.warmup_s,
                    min_iters=config.min_iters,
                    min_time_s=config.min_time_s,
                )
            except OfbError as exc:
                # NOTE: e.g. a batch beyond a fixed engine profile; the other batches still count
                per_batch[str(batch)] = Failure(error=str(exc))
                continue
            per_batch[str(batch)] = PairLatency(
                dense=LatencyStats.of(result.reports["dense"]),
                subnet=LatencyStats.of(result.reports["subnet"]),
                speedup=result.round_speedup(),
                pooled_speedup=result.speedup(),
                round_ratios=result.round_ratios(),
                speedup_per_flops=result.round_speedup() / flops_ratio,
            )
            log.info("%s:%s batch %d: speedup %.2fx", backend, precision, batch, result.round_speedup())
    finally:
        for runner in runners.values():
            runner.deactivate()
    return per_batch
