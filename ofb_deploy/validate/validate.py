"""``validate_run``: accuracy of every built engine and dense-vs-subnet latency, in one JSON document.

Accuracy: the PyTorch dense and subnet models (fp32, the references) and every engine in ``RUN/build/`` run
over the same validation images; each gets top-1/top-5 against the labels and its agreement with the PyTorch
model of its role (``compare_outputs``: errors, cosine, top-1 agreement).

Latency: for every backend and precision built for both roles (and eager PyTorch), dense and subnet are timed
in the same process, interleaved in alternating rounds (``interleaved.py``), at each batch size. The speedup is
``median(dense) / median(subnet)``; dividing it by the FLOPs ratio (``dense / subnet`` MACs) says how much of the
FLOPs cut became wall time (1.0: all of it). Small ViTs stay below 1: LayerNorm, softmax, the patch embedding
and per-op overheads do not shrink with the widths.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.artifacts import ROLES, RunDir, model_weight_files, sidecar_path
from ofb_deploy.errors import ArtifactError, OfbError
from ofb_deploy.models.checkpoint import read_model_dir_spec
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.models.io import OUTPUT_NAME
from ofb_deploy.utils.io import read_json, sha256_file, sha256_json
from ofb_deploy.utils.progress import make_progress
from ofb_deploy.validate.config import ValidateConfig, latency_key
from ofb_deploy.validate.results import (
    BackendLatency,
    LatencyCheck,
    Machine,
    ModelResult,
    PairLatency,
    PredictedLatency,
    ValidationResult,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineFile:
    """One built engine (``RunDir.engine_path``) and its JSON sidecar."""

    role: str
    backend: str
    precision: str
    path: Path

    @property
    def key(self) -> str:
        """The report's backend key: the backend name for fp32, ``backend.precision`` otherwise."""
        return latency_key(self.backend, self.precision)

    def sidecar(self) -> dict[str, Any]:
        """The sidecar JSON, or ``{}`` when there is none."""
        path = sidecar_path(self.path)
        return read_json(path, "engine sidecar") if path.is_file() else {}


def list_engines(run_dir: RunDir) -> list[EngineFile]:
    """Every engine file the build stage wrote, sorted by backend, precision and role."""
    from ofb_deploy.engines.registry import BACKENDS, PRECISIONS

    found = []
    for role, backend, precision, path in run_dir.engine_files():
        if role in ROLES and backend in BACKENDS and precision in PRECISIONS:
            found.append(EngineFile(role, backend, precision, path))
    return sorted(found, key=lambda e: (e.backend, PRECISIONS.index(e.precision), ROLES.index(e.role)))


def describe_model(run_dir: RunDir, role: str) -> ModelResult:
    """Arch, MACs and params of a role's PyTorch model (``dense`` or ``subnet``; accuracy is filled in later).

    Args:
        run_dir: the run.
        role: ``dense`` or ``subnet``.
    """
    folder = run_dir.model_dir(role)
    spec = read_model_dir_spec(folder)
    return ModelResult(model_dir=str(folder), arch=spec, flops=count_macs(spec).total, params=count_params(spec))


def validation_reader(run_dir: RunDir, config: ValidateConfig) -> Any:
    """Validation images of the run's data, fitted to the dense model's input, as a labelled reader."""
    from ofb_deploy.data import build_splits, make_reader, run_data

    spec = read_model_dir_spec(run_dir.model_dir("dense"))
    splits = build_splits(run_data(run_dir), spec, train_augment=False)
    return make_reader(splits.val, batch_size=config.eval_batch, limit=config.val_size)


def topk(logits: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Top-k accuracies in percent (k capped at the number of classes).

    Args:
        logits: ``(N, classes)`` scores.
        labels: ``(N,)`` class indices.
        ks: which k.
    """
    order = np.argsort(-logits, axis=1)
    out = {}
    for k in ks:
        hit = (order[:, : min(k, logits.shape[1])] == labels[:, None]).any(axis=1)
        out[f"top{k}"] = float(100.0 * hit.mean())
    return out


def inputs_hash(run_dir: RunDir, config: ValidateConfig) -> str:
    """Hash of what validation reads: its config, both models' weights and every engine file's sidecar."""
    from ofb_deploy.data import run_data

    parts: dict[str, Any] = {"config": config.to_dict(), "data": run_data(run_dir).to_dict()}
    for role in ROLES:
        parts[role] = {p.name: sha256_file(p) for p in model_weight_files(run_dir.model_dir(role))}
    for engine in list_engines(run_dir):
        side = sidecar_path(engine.path)
        parts[engine.path.name] = sha256_file(side if side.is_file() else engine.path)
    return sha256_json(parts)


def runnable_engines(engines: list[EngineFile], config: ValidateConfig) -> tuple[list[EngineFile], dict[str, str]]:
    """The engines ``config`` selects that can run here, and why each other one cannot."""
    from ofb_deploy.engines.registry import backend_status

    keep, skipped = [], {}
    for engine in engines:
        if config.backends is not None and engine.backend not in config.backends:
            continue
        if config.precisions is not None and engine.precision not in config.precisions:
            continue
        status = backend_status(engine.backend)
        if status.can_run:
            keep.append(engine)
        else:
            skipped[engine.path.name] = status.reason
    return keep, skipped


def validate_run(run_dir: RunDir, config: ValidateConfig | None = None) -> dict[str, Any]:
    """Measure accuracy and latency of a run's models and engines; write ``RunDir.validate_path``.

    Returns the document as written (``ValidationResult.to_dict()``; ``read_validation`` reads it typed).

    Args:
        run_dir: a run whose ``train`` and ``slice`` stages are done (``export``/``build`` for engines).
        config: what to measure (default ``ValidateConfig()``).
    """
    from ofb_deploy.data import run_data
    from ofb_deploy.timing.latency import machine_info
    from ofb_deploy.validate.accuracy import evaluate_all
    from ofb_deploy.validate.speed import time_all

    config = config or ValidateConfig()
    for role in ROLES:
        run_dir.require(run_dir.model_dir(role), f"run the {'train' if role == 'dense' else 'slice'} stage first")
    digest = inputs_hash(run_dir, config)
    started = time.perf_counter()
    models = {role: describe_model(run_dir, role) for role in ROLES}
    ratio = models["dense"].flops / models["subnet"].flops
    engines, skipped = runnable_engines(list_engines(run_dir), config)
    reader = validation_reader(run_dir, config)
    with make_progress() as progress:
        tops, results, sliced = evaluate_all(run_dir, reader, engines, config, progress)
        latency = time_all(run_dir, reader, engines, config, progress, ratio) if config.latency else {}
    result = ValidationResult(
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        config=config.to_dict(),
        data={**run_data(run_dir).to_dict(), "val_samples": int(len(reader.images))},
        machine=Machine.model_validate(machine_info()),
        models={role: model.model_copy(update=tops[role].model_dump()) for role, model in models.items()},
        sliced=sliced,
        flops_ratio=ratio,
        engines=results,
        skipped_engines=skipped,
        latency=latency,
        latency_prediction=latency_prediction(run_dir, latency),
        seconds=round(time.perf_counter() - started, 1),
    )
    result.write(run_dir.validate_path)
    run_dir.mark_done("validate", digest, **summary(result))
    return result.to_dict()


def latency_prediction(run_dir: RunDir, latency: dict[str, BackendLatency]) -> LatencyCheck | None:
    """The search's predicted subnet latency against the one measured here on the same backend and batch.

    ``None`` unless the search targeted latency. ``measured_ms`` is ``None`` when validate did not time that
    backend (fp32) at that batch; ``error_pct`` is (predicted - measured) / measured. The same comparison as a
    share of the dense model (``predicted_share`` against ``measured_share``, dense and subnet timed together
    here) is free of the machine's drift since profiling, which ``drift`` (dense measured / dense predicted) shows.

    Args:
        run_dir: the run (its search result holds the prediction).
        latency: what validate timed, per backend key and batch.
    """
    if not run_dir.arch_path.is_file():
        return None
    doc = read_json(run_dir.arch_path, "search result").get("latency")
    if not doc:
        return None
    predicted = PredictedLatency.parse(doc, f"{run_dir.arch_path} latency")
    base = predicted.model_dump()
    per_batch = latency.get(predicted.backend)
    entry = per_batch.get(str(predicted.batch)) if isinstance(per_batch, dict) else None
    if not isinstance(entry, PairLatency):
        return LatencyCheck(**base, measured_ms=None, error_pct=None)
    threads = entry.subnet.runner.get("threads")
    if predicted.threads is not None and threads != predicted.threads:
        # NOTE: a table holds one thread count; a time at another count is no check of it
        note = f"validate timed at {threads} thread(s), the table was profiled at {predicted.threads}"
        return LatencyCheck(**base, measured_ms=None, error_pct=None, note=note)
    measured, dense = entry.subnet.p50_ms, entry.dense.p50_ms
    check = {"measured_ms": measured, "error_pct": _error(predicted.predicted_ms, measured)}
    if predicted.dense_predicted_ms:
        share = predicted.predicted_ms / predicted.dense_predicted_ms
        check |= {
            "dense_measured_ms": dense,
            "drift": round(dense / predicted.dense_predicted_ms, 4),
            "predicted_share": round(share, 4),
            "measured_share": round(measured / dense, 4),
            "share_error_pct": _error(share, measured / dense),
        }
    return LatencyCheck(**base, **check)


def _error(predicted: float, measured: float | None) -> float | None:
    return None if measured is None else round(100 * (predicted - measured) / measured, 2)


def summary(result: ValidationResult | dict[str, Any]) -> dict[str, Any]:
    """The few numbers the stage marker and the CLI print: top-1 per role, speedups per backend and batch.

    Args:
        result: the validation results (or their JSON, as ``validate_run`` returns it).
    """
    if not isinstance(result, ValidationResult):
        result = ValidationResult.parse(result, "validation results")
    out: dict[str, Any] = {f"{role}_top1": result.models[role].top1 for role in ROLES}
    out["speedup"] = {key: {} for key, per_batch in result.latency.items() if isinstance(per_batch, dict)}
    for key, batch, pair in result.timed():
        out["speedup"][key][batch] = round(pair.speedup, 3)
    return out


def read_validation(run_dir: RunDir) -> ValidationResult:
    """The validation results of a run (``RunDir.validate_path``), or a one-line error saying to run the stage.

    Args:
        run_dir: the run.
    """
    path = run_dir.validate_path
    if not path.is_file():
        raise ArtifactError(f"{path} not found: run `ofb-deploy validate {run_dir.root}` first")
    try:
        return ValidationResult.read(path, "validation results")
    except ArtifactError as exc:
        raise ArtifactError(f"{exc}; run `ofb-deploy validate {run_dir.root}` again") from None


def outputs_of(runner: Any, reader: Any) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of one runner over a labelled reader (the runner is activated for the pass)."""
    from ofb_deploy.engines.outputs import run_runners

    results = run_runners([runner], reader)
    if results.labels is None:
        raise OfbError("the validation reader has no labels")
    return np.asarray(results.outputs[runner.name][OUTPUT_NAME], dtype=np.float32), results.labels
