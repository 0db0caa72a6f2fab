"""``bench``: latency of one engine, ONNX file or model folder at several batch sizes (``ofb-deploy bench``).

The target decides the default backend: a model folder runs on eager PyTorch, an ``.onnx`` on ONNX Runtime CPU,
an ``.engine`` on the backend its sidecar names. A model folder benchmarked on an ONNX Runtime backend uses the
folder's own ``<stem>.onnx`` when there is one, else a temporary export. With ``baseline`` the two targets are
timed interleaved in this process (``interleaved.py``) and each batch gets a speedup ``baseline / target``.
Inputs are seeded random images of the model's input shape: latency does not depend on pixel values.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.artifacts import model_onnx, model_stem, onnx_precision
from ofb_deploy.engines.registry import CPU_BACKENDS, make_runner
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.models.io import INPUT_NAME
from ofb_deploy.timing.config import TimingConfig
from ofb_deploy.timing.interleaved import measure_interleaved
from ofb_deploy.timing.latency import LatencyReport, machine_info, measure_latency
from ofb_deploy.utils.threads import cpu_threads

log = logging.getLogger(__name__)

BENCH_SCHEMA_VERSION = 1
TIMING = TimingConfig()  # bench times like validate and compare: one home for the defaults


def _sidecar(path: Path) -> dict[str, Any]:
    from ofb_deploy.engines.sidecar import read_sidecar

    return read_sidecar(path)


def target_kind(target: Path) -> str:
    """``model`` (a model folder), ``onnx`` or ``engine``; a one-line error for anything else."""
    if target.is_dir():
        return "model"
    if not target.is_file():
        raise ArtifactError(f"benchmark target not found: {target}")
    if target.suffix == ".onnx":
        return "onnx"
    if target.suffix == ".engine":
        return "engine"
    raise ConfigError(f"{target}: expected a model folder, an .onnx or an .engine file")


def default_backend(target: Path) -> str:
    """The backend a target runs on when none is given."""
    kind = target_kind(target)
    if kind == "engine":
        return str(_sidecar(target)["backend"])
    return "torch" if kind == "model" else "ort-cpu"


def target_precision(target: Path) -> str:
    """Precision of a target: from an engine's sidecar, an ONNX name (``artifacts.onnx_precision``), else ``fp32``."""
    kind = target_kind(target)
    if kind == "engine":
        return str(_sidecar(target).get("precision", "fp32"))
    return onnx_precision(target) if kind == "onnx" else "fp32"


@contextlib.contextmanager
def runnable_path(target: Path, backend: str) -> Iterator[Path]:
    """The path a backend's runner takes: a model folder becomes an ONNX for non-torch backends."""
    if target_kind(target) != "model" or backend == "torch":
        yield target
        return
    stem = model_stem(target)
    if stem is not None and model_onnx(target, stem).is_file():
        yield model_onnx(target, stem)
        return
    from ofb_deploy.models.checkpoint import load_model_dir
    from ofb_deploy.onnxtools.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="ofb-bench-") as tmp:
        path = model_onnx(tmp)
        log.info("exporting %s to a temporary ONNX for %s", target, backend)
        export_onnx(load_model_dir(target), path)
        yield path


def random_feed(runner: Any, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded normal images of the runner's input shape with batch ``batch``."""
    spec = next(s for s in runner.input_specs() if s.name == INPUT_NAME)
    dims = spec.shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise ConfigError(f"{runner.name}: input {spec.name} has dynamic dims {spec.shape}; cannot make inputs")
    rng = np.random.default_rng(seed)
    return {INPUT_NAME: rng.standard_normal((batch, *dims), dtype=np.float32)}


def bench(
    target: Path,
    *,
    backend: str | None = None,
    batches: tuple[int, ...] = TIMING.batches,
    baseline: Path | None = None,
    threads: int | None = None,
    warmup_s: float = TIMING.warmup_s,
    min_iters: int = TIMING.min_iters,
    min_time_s: float = TIMING.min_time_s,
    rounds: int = TIMING.rounds,
) -> dict[str, Any]:
    """Latency of ``target`` per batch (and its speedup over ``baseline``, timed interleaved).

    Args:
        target: model folder, ``.onnx`` or ``.engine``.
        backend: backend name (default from the target, see ``default_backend``).
        batches: batch sizes.
        baseline: another target timed on the same backend for a speedup (e.g. the dense model).
        threads: CPU threads of ``torch``/``ort-cpu`` (``None``: every CPU this process may use).
        warmup_s: warm-up seconds per batch.
        min_iters: fewest timed iterations per batch.
        min_time_s: fewest timed seconds per batch.
        rounds: interleaving rounds per batch (with ``baseline``).
    """
    target = Path(target)
    backend = backend or default_backend(target)
    if backend in CPU_BACKENDS:
        threads = cpu_threads(threads)  # fixed and recorded, never the library's silent default
    doc: dict[str, Any] = {"schema_version": BENCH_SCHEMA_VERSION, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    doc |= {"target": str(target), "backend": backend, "precision": target_precision(target), "threads": threads}
    doc["timing"] = {"warmup_s": warmup_s, "min_iters": min_iters, "min_time_s": min_time_s}
    with contextlib.ExitStack() as stack:
        path = stack.enter_context(runnable_path(target, backend))
        runner = stack.enter_context(make_runner(backend, path, doc["precision"], threads=threads, name="target"))
        if baseline is None:
            results = {str(b): _single(runner, b, warmup_s, min_iters, min_time_s) for b in batches}
        else:
            doc["baseline"] = str(baseline)
            base_path = stack.enter_context(runnable_path(Path(baseline), backend))
            base = stack.enter_context(
                make_runner(backend, base_path, target_precision(Path(baseline)), threads=threads, name="baseline")
            )
            results = {
                str(b): _pair(
                    runner, base, b, rounds=rounds, warmup_s=warmup_s, min_iters=min_iters, min_time_s=min_time_s
                )
                for b in batches
            }
        doc["runner"] = runner.describe()
    doc["results"] = results
    doc["machine"] = machine_info()
    return doc


def _single(runner: Any, batch: int, warmup_s: float, min_iters: int, min_time_s: float) -> dict[str, Any]:
    report = measure_latency(
        runner, random_feed(runner, batch), warmup_s=warmup_s, min_iters=min_iters, min_time_s=min_time_s
    )
    log.info(report.summary())
    return report.to_dict()


def _pair(runner: Any, base: Any, batch: int, **timing: Any) -> dict[str, Any]:
    result = measure_interleaved({"baseline": base, "target": runner}, random_feed(runner, batch), **timing)
    reports: dict[str, LatencyReport] = result.reports
    out = reports["target"].to_dict()
    out["baseline"] = reports["baseline"].to_dict()
    out["speedup"] = result.round_speedup("baseline", "target")  # as validate: the median of per-round ratios
    out["pooled_speedup"] = result.speedup("baseline", "target")
    log.info("%s; speedup over baseline %.2fx", reports["target"].summary(), out["speedup"])
    return out
