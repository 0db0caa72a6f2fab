"""Accuracy pass of ``validate_run``: PyTorch references, then every engine against labels and its reference.

Each engine is compared with the PyTorch fp32 model of its own role (dense engines with the dense model, subnet
engines with the sliced/fine-tuned subnet) with ``compare_outputs``, so an export or quantization error shows up
as low agreement even when top-1 barely moves.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from rich.progress import Progress

from ofb_deploy.artifacts import ROLES, RunDir
from ofb_deploy.errors import OfbError
from ofb_deploy.models.io import OUTPUT_NAME
from ofb_deploy.validate.config import ValidateConfig
from ofb_deploy.validate.results import Agreement, EngineResult, TopK
from ofb_deploy.validate.validate import EngineFile, outputs_of, topk

log = logging.getLogger(__name__)


def engine_batch(engine: EngineFile, wanted: int) -> int:
    """Largest usable batch for an engine: ``wanted``, capped by a fixed profile recorded in its sidecar."""
    profile = engine.sidecar().get("profile") or {}
    batches = profile.get("batches")
    cap = max(batches) if isinstance(batches, list) and batches else profile.get("max_batch")
    return min(wanted, int(cap)) if isinstance(cap, int) and cap > 0 else wanted


def evaluate_all(
    run_dir: RunDir,
    reader: Any,
    engines: list[EngineFile],
    config: ValidateConfig,
    progress: Progress,
) -> tuple[dict[str, TopK], list[EngineResult], TopK | None]:
    """Top-1/top-5 of the PyTorch models and of each engine, plus each engine's agreement with PyTorch.

    Returns the PyTorch models' accuracy per role, each engine's result and the sliced model's accuracy before
    fine-tuning (``None`` when the subnet was not fine-tuned).

    Args:
        run_dir: the run.
        reader: labelled validation reader (``ArrayReader``).
        engines: engines to evaluate (runnable here).
        config: batch size and threads.
        progress: rich progress to report on.
    """
    from ofb_deploy.engines.registry import make_runner

    task = progress.add_task("validate accuracy", total=len(ROLES) + len(engines), info="")
    refs: dict[str, np.ndarray] = {}
    models: dict[str, TopK] = {}
    for role in ROLES:
        progress.update(task, info=f"torch {role}")
        runner = make_runner("torch", run_dir.model_dir(role), threads=config.threads, name=f"torch:{role}")
        logits, labels = outputs_of(runner, reader)
        refs[role] = logits
        models[role] = TopK(**topk(logits, labels))
        progress.advance(task)
    sliced = None
    if run_dir.model_dir("subnet") != run_dir.slice_dir and run_dir.slice_dir.is_dir():
        # NOTE: the sliced model before fine-tuning shows what slicing alone keeps (no engine is built of it)
        runner = make_runner("torch", run_dir.slice_dir, threads=config.threads, name="torch:sliced")
        sliced = TopK(**topk(*outputs_of(runner, reader)))
    results = []
    for engine in engines:
        progress.update(task, info=engine.path.name)
        results.append(_evaluate_engine(engine, reader, refs[engine.role], config))
        progress.advance(task)
    return models, results, sliced


def _evaluate_engine(engine: EngineFile, reader: Any, reference: np.ndarray, config: ValidateConfig) -> EngineResult:
    from ofb_deploy.engines.registry import make_runner
    from ofb_deploy.onnxtools.parity import compare_outputs

    entry = EngineResult(
        role=engine.role, backend=engine.backend, precision=engine.precision, key=engine.key, path=str(engine.path)
    )
    try:
        runner = make_runner(engine.backend, engine.path, engine.precision, threads=config.threads)
        batch_reader = reader.with_batch_size(engine_batch(engine, config.eval_batch))
        logits, labels = outputs_of(runner, batch_reader)
    except OfbError as exc:
        # NOTE: one engine that fails to load must not hide the others' results; the report shows the reason
        log.warning("%s: %s", engine.path.name, exc)
        return entry.model_copy(update={"error": str(exc)})
    agreement = compare_outputs({OUTPUT_NAME: reference}, {OUTPUT_NAME: logits})
    accuracy = TopK(**topk(logits, labels))
    log.info("%s: top-1 %.2f%%, agreement with torch %.2f%%", engine.path.name, accuracy.top1,
             100 * agreement.top1_agreement)  # fmt: skip
    return entry.model_copy(
        update={**accuracy.model_dump(), "agreement": Agreement.model_validate(agreement.to_dict())}
    )
