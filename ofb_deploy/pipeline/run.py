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

from ofb_deploy.artifacts import STAGES, RunDir
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.pipeline.config import PipelineConfig
from ofb_deploy.utils.io import atomic_write_json, read_json, sha256_json

log = logging.getLogger(__name__)

StageFn = Callable[[RunDir, PipelineConfig, bool], dict[str, Any]]


def stage_section(config: PipelineConfig, stage: str) -> dict[str, Any]:
    """The part of the config a stage's result depends on (what its pipeline hash covers)."""
    base = {"model": config.model, "data": config.data.to_dict()}
    sections: dict[str, Any] = {
        "train": {**base, "checkpoint": config.checkpoint, "pretrained": config.pretrained,
                  "train": config.train.to_dict()},
        "search": {**base, "search": config.search.result_dict()},
        "slice": config.slice.to_dict(),
        "finetune": config.finetune.to_dict(),
        "export": config.export.to_dict(),
        "build": {"build": config.build.to_dict(), "plan": config.build.plan(), "batches": engine_batches(config)},
        "validate": config.validate.to_dict(),
        "report": {"targets": config.targets.to_dict()},
    }  # fmt: skip
    return sections[stage]


# -- stages: each one library call -------------------------------------------------------------------------------
def _train(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.train import import_dense, train_run

    if config.checkpoint is not None:
        return import_dense(run_dir, config.model, config.checkpoint, config.data)
    return train_run(run_dir, config.model, config.train, data=config.data, resume=resume,
                     pretrained=config.pretrained)  # fmt: skip


def _search(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.search import run_search

    return run_search(run_dir, config.search, data=config.data, resume=resume)


def _slice(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.slicing import slice_run

    return slice_run(run_dir, align=config.slice.align)


def _finetune(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.finetune import finetune_run

    ft = config.finetune
    return finetune_run(run_dir, ft.train_config(), teacher=ft.teacher, resume=resume, data=config.data,
                        distill=ft.distill_config())  # fmt: skip


def _export(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.export.run import export_run

    needed = {precision for _, precision in config.build.plan()}  # the ONNX files the build starts from
    export = config.export
    export = export.replace(fp16=export.fp16 or "fp16" in needed, int8=export.int8 or "int8" in needed)
    return export_run(run_dir, export)


def _build(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.build.run import build_plan

    return build_plan(run_dir, config.build.plan(), engine_batches(config))


def engine_batches(config: PipelineConfig) -> tuple[int, ...]:
    """The batch sizes every engine's profile covers: the ones validate will time (the one home of that rule; the
    build stage's hash covers it, so a change of ``validate.batches`` rebuilds the engines)."""
    return tuple(validate_config(config).batches)


def validate_config(config: PipelineConfig) -> Any:
    """The run's ``ValidateConfig``; after a latency-targeted search it also times the table's batch, at the
    table's threads unless ``validate.threads`` is set, so the prediction can be checked."""
    validate, search = config.validate, config.search
    if search.target_latency is None:
        return validate
    threads, batch = search.latency_threads, search.latency_batch
    if search.latency_table is not None:
        from ofb_deploy.profile.table import LatencyTable

        key = LatencyTable.load(search.latency_table).key
        threads, batch = key.get("threads"), key["batch"]
    if validate.threads is None:
        validate = validate.replace(threads=threads)
    if batch not in validate.batches:
        validate = validate.replace(batches=tuple(sorted({*validate.batches, batch})))
    return validate


def _validate(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.validate.validate import summary, validate_run

    return summary(validate_run(run_dir, validate_config(config)))


def _report(run_dir: RunDir, config: PipelineConfig, resume: bool) -> dict[str, Any]:
    from ofb_deploy.report.report import render_report

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
    first, last = _stage_index(from_stage, "from"), _stage_index(until_stage, "until")
    if first is not None and last is not None and first > last:
        raise ConfigError(f"--from {from_stage} comes after --until {until_stage}")
    config.consistent().check()
    run_dir = RunDir(out or config.out, create=True)
    run_dir.stage_record("train")  # a malformed marker file fails now, before anything is written
    _read_progress(run_dir)
    run_dir.write_config(config.to_dict())
    started = time.perf_counter()
    outcome: dict[str, Any] = {}
    previous: dict[str, Any] | None = None
    for i, stage in enumerate(STAGES):
        if last is not None and i > last:
            break
        if stage == "finetune" and not config.finetune.enabled:
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
