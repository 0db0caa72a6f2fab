"""``run_pipeline``: train -> search -> slice -> finetune -> export -> build -> validate -> report in one run dir.

Skipping and resuming. Each stage gets a *pipeline hash*: its config section chained with the done marker
(inputs hash and finish time) of the stage before it, so changing a setting, or re-running any earlier stage,
re-runs everything after it and nothing before. A stage whose done marker (``RunDir.stage_record``) carries the
same pipeline hash is skipped. Before a stage starts, ``RunDir.pipeline_path`` records the hash it started with; if the
process dies, the next run finds that hash unchanged and resumes the stage from its own resume state (training,
search and fine-tuning save one per epoch) instead of starting over. A stage that starts afresh first forgets
the markers of every later stage, so no stale result is ever read downstream.

``from_stage`` re-runs that stage and everything after it even when done; ``until_stage`` stops after one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import STAGES, RunDir, model_json, model_weight_files, model_weights
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.pipeline.config import PRETRAINED, PipelineConfig
from ofb_deploy.utils.io import atomic_write_json, read_json, sha256_json

log = logging.getLogger(__name__)

StageFn = Callable[[RunDir, PipelineConfig, bool], dict[str, Any]]


def stage_section(config: PipelineConfig, stage: str) -> dict[str, Any]:
    """The part of the config a stage's result depends on (what its pipeline hash covers)."""
    base = {"model": config.model, "data": config.data_config().to_dict()}
    sections: dict[str, Any] = {
        "train": {**base, "checkpoint": config.checkpoint, "pretrained": config.pretrained, "train": config.train},
        "search": {**base, "search": config.search_config().result_dict()},
        "slice": config.slice,
        "finetune": config.finetune,
        "export": config.export,
        "build": {"build": config.build, "backends": [b for b, _ in build_plan(config)]},
        "validate": config.validate,
        "report": {"targets": config.targets},
    }
    return sections[stage]


def build_plan(config: PipelineConfig) -> list[tuple[str, str]]:
    """``(backend, precision)`` pairs the build stage makes: ``backends: auto`` = every backend buildable here."""
    from ofb_deploy.engines.registry import BACKENDS, PRECISIONS, list_backends

    wanted = config.build.get("backends", "auto")
    precisions = config.build.get("precisions", ["fp32"])
    if isinstance(precisions, str):
        precisions = [precisions]
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"build precisions: unknown {bad}; precisions: {', '.join(PRECISIONS)}")
    if wanted in (None, "auto"):
        backends = [s.name for s in list_backends() if s.can_build and s.name != "torch"]
    else:
        backends = [wanted] if isinstance(wanted, str) else list(wanted)
        bad = [b for b in backends if b not in BACKENDS or b == "torch"]
        if bad:
            raise ConfigError(f"build backends: cannot build {bad}; backends: {', '.join(BACKENDS[1:])}")
    return [(b, p) for b in backends for p in precisions]


# -- stages -----------------------------------------------------------------------------------------------------
def _train(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.train import train

    if config.checkpoint is not None:
        return _import_dense(run_dir, config)
    metrics = train(
        config.model,
        config.data_config(),
        run_dir.dense_dir,
        config.train_config(),
        pretrained=config.pretrained,
        resume=resume,
    )
    run_dir.mark_done("train", sha256_json(stage_section(config, "train")), top1=metrics.get("top1"))
    return metrics


def _import_dense(run_dir: RunDir, config: PipelineConfig) -> dict[str, Any]:
    """A given dense checkpoint becomes ``RUN/dense``: a model folder, a weights file of ``model``, or
    ``pretrained`` (the model's pretrained weights: shipped in the package for the presets, else timm's)."""
    from ofb_deploy.data import dataset_info
    from ofb_deploy.models import create_model, load_model_dir, save_model_dir
    from ofb_deploy.models.pretrained import pretrained_dir
    from ofb_deploy.utils.io import sha256_file

    data = config.data_config()
    info = dataset_info(data)
    meta: dict[str, Any] = {"source_model": config.model, "data": data.to_dict(), "checkpoint": config.checkpoint}
    if config.checkpoint == PRETRAINED:
        model = create_model(config.model, num_classes=info.num_classes, in_chans=info.in_chans, pretrained=True)
        shipped = pretrained_dir(config.model)
        if shipped is not None:  # keep the shipped recipe, curve and top-1 next to the weights
            doc = read_json(model_json(shipped), "pretrained model")
            meta.update({k: doc[k] for k in ("config", "metrics", "history") if k in doc}, pretrained=shipped.name)
        digest = sha256_file(model_weights(shipped)) if shipped else f"timm:{config.model}"
    else:
        path = Path(config.checkpoint)
        if path.is_dir():
            model = load_model_dir(path)
            digest = sha256_json({p.name: sha256_file(p) for p in model_weight_files(path)})
        else:
            model = create_model(config.model, num_classes=info.num_classes, in_chans=info.in_chans, checkpoint=path)
            digest = sha256_file(path)
    save_model_dir(model, run_dir.stage_dir("train", create=True), meta=meta)
    run_dir.mark_done("train", digest, checkpoint=str(config.checkpoint))
    return {"checkpoint": str(config.checkpoint)}


def _search(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.search import run_search

    return run_search(run_dir, config.search_config(), data=config.data_config(), resume=resume)


def _slice(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.slicing import slice_run

    return slice_run(run_dir, align=int(config.slice.get("align", 1)))


def _finetune(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.finetune import finetune_run

    return finetune_run(
        run_dir,
        config.finetune_config(),
        teacher=config.finetune_teacher(),
        resume=resume,
        data=config.data_config(),
    )


def _export(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.export.run import export_run

    precisions = {precision for _, precision in build_plan(config)}
    options = {"int8": "int8" in precisions, "fp16": "fp16" in precisions, **config.export}
    return export_run(run_dir, **options)


def _build(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.engines import build_run

    batches = tuple(config.validate_config().batches)
    built, failed = [], {}
    for backend, precision in build_plan(config):
        try:
            build_run(run_dir, backend, precision, batches)
            built.append(f"{backend}:{precision}")
        except ConfigError:
            raise
        except Exception as exc:  # one backend's failure (its library, an unsupported op) must not stop the rest
            log.warning("build %s %s failed: %s", backend, precision, str(exc).splitlines()[0] if str(exc) else exc)
            failed[f"{backend}:{precision}"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not built:
        raise ArtifactError(f"no engine could be built: {failed}")
    record = run_dir.stage_record("build") or {}
    run_dir.mark_done("build", record.get("inputs_hash", ""), engines=record.get("engines", {}), failed=failed)
    return {"built": built, "failed": failed}


def _validate(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.validate.validate import summary, validate_run

    return summary(validate_run(run_dir, config.validate_config()))


def _report(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.validate.report import render_report

    doc = render_report(run_dir)
    return {"report": str(run_dir.report_md_path), "targets": doc["targets"]}


STAGE_FNS: dict[str, StageFn] = {
    "train": _train,
    "search": _search,
    "slice": _slice,
    "finetune": _finetune,
    "export": _export,
    "build": _build,
    "validate": _validate,
    "report": _report,
}


# -- driver -----------------------------------------------------------------------------------------------------
def _stage_index(stage: str | None, what: str) -> int | None:
    if stage is None:
        return None
    if stage not in STAGES:
        raise ConfigError(f"--{what} {stage!r}: unknown stage; stages: {', '.join(STAGES)}")
    return STAGES.index(stage)


def _chain(record: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if record is None else {k: record.get(k) for k in ("inputs_hash", "finished_at", "pipeline_hash")}


def _read_progress(run_dir: RunDir) -> dict[str, Any]:
    return read_json(run_dir.pipeline_path, "pipeline progress") if run_dir.pipeline_path.is_file() else {}


def _run_stage(run_dir: RunDir, config: PipelineConfig, stage: str, digest: str, fresh: bool) -> dict[str, Any]:
    """Run one stage (resuming when it was started with the same hash) and tag its marker with the hash."""
    progress = _read_progress(run_dir)
    resume = not fresh and progress.get(stage) == digest
    if not resume:
        stale = run_dir.state_file(stage)
        stale.unlink(missing_ok=True)  # a resume state from other inputs must never be picked up
    run_dir.clear_done(*STAGES[STAGES.index(stage) :])
    atomic_write_json(run_dir.pipeline_path, {**progress, stage: digest})
    log.info("stage %s: %s", stage, "resuming" if resume else "running")
    started = time.perf_counter()
    result = STAGE_FNS[stage](run_dir, config, resume)
    record = run_dir.stage_record(stage)
    if record is None:
        raise ArtifactError(f"stage {stage} stopped before it finished ({result}); run again to resume it")
    info = {k: v for k, v in record.items() if k not in ("inputs_hash", "finished_at", "pipeline_hash", "seconds")}
    seconds = round(time.perf_counter() - started, 1)
    run_dir.mark_done(stage, record.get("inputs_hash", ""), **info, pipeline_hash=digest, seconds=seconds)
    return result


def run_pipeline(
    config: PipelineConfig,
    *,
    out: str | Path | None = None,
    from_stage: str | None = None,
    until_stage: str | None = None,
) -> dict[str, Any]:
    """Run every stage of ``config`` in one run directory, skipping finished ones and resuming a killed one.

    Args:
        config: the pipeline config (``load_config``).
        out: run directory (default ``config.out``).
        from_stage: re-run this stage and every later one even when done (earlier ones must be done).
        until_stage: stop after this stage.
    """
    config.check()
    first, last = _stage_index(from_stage, "from"), _stage_index(until_stage, "until")
    if first is not None and last is not None and first > last:
        raise ConfigError(f"--from {from_stage} comes after --until {until_stage}")
    run_dir = RunDir(out or config.out, create=True)
    run_dir.write_config({**config.to_dict(), "data": config.data_config().to_dict()})
    started = time.perf_counter()
    outcome: dict[str, Any] = {}
    previous: dict[str, Any] | None = None
    for i, stage in enumerate(STAGES):
        if last is not None and i > last:
            break
        if stage == "finetune" and not config.finetune_enabled():
            run_dir.clear_done("finetune")  # the subnet is then the sliced model (RunDir.model_dir)
            outcome[stage] = {"status": "disabled"}
            continue
        digest = sha256_json({"stage": stage, "config": stage_section(config, stage), "after": _chain(previous)})
        record = run_dir.stage_record(stage)
        if first is not None and i < first:
            if record is None:
                raise ArtifactError(f"--from {from_stage}: the earlier stage {stage} is not done; run without --from")
            outcome[stage] = {"status": "kept (before --from)"}
        elif record is not None and record.get("pipeline_hash") == digest and first is None:
            outcome[stage] = {"status": "skipped (done, inputs unchanged)"}
        else:
            t0 = time.perf_counter()
            result = _run_stage(run_dir, config, stage, digest, fresh=first is not None)
            outcome[stage] = {"status": "ran", "seconds": round(time.perf_counter() - t0, 1), "result": result}
        previous = run_dir.stage_record(stage)
    total = round(time.perf_counter() - started, 1)
    atomic_write_json(run_dir.pipeline_path, {**_read_progress(run_dir), "last_run": {"seconds": total}})
    return {"run_dir": str(run_dir.root), "seconds": total, "stages": outcome}
