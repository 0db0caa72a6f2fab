"""Reports of a run: the report JSON (stable schema, docs/report_schema.md), its Markdown view and PNG plots.

Everything is rendered from files already in the run directory (the validation results, the model folders, the
search result and the run config), so ``ofb-deploy report RUN`` re-renders without measuring anything.
``build_report`` makes the ``Report`` (``results.py``); ``render_markdown`` and ``plots.py`` turn it into the human
views.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import REPORT_PLOTS, STAGES, RunDir
from ofb_deploy.compare.results import CompareResult, SweepResult
from ofb_deploy.report.markdown import render_markdown
from ofb_deploy.report.plots import draw_plots
from ofb_deploy.report.results import (
    CompareMethod,
    CompareSummary,
    Engine,
    Latency,
    Model,
    Report,
    SearchInfo,
    Subnet,
    SweepPoint,
    SweepSummary,
    TargetCheck,
)
from ofb_deploy.utils.io import atomic_write_text, read_json, sha256_file, sha256_json
from ofb_deploy.validate.config import TargetsConfig
from ofb_deploy.validate.results import Failure, ValidationResult
from ofb_deploy.validate.validate import read_validation


def _role_latency(validation: ValidationResult, role: str) -> dict[str, dict[str, Latency]]:
    out: dict[str, dict[str, Latency]] = {}
    for key, batch, pair in validation.timed():
        out.setdefault(key, {})[batch] = Latency.of(getattr(pair, role))
    return out


def _speedups(validation: ValidationResult, field: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, batch, pair in validation.timed():
        if getattr(pair, field) is not None:
            out.setdefault(key, {})[batch] = getattr(pair, field)
    return out


def _errors(validation: ValidationResult) -> dict[str, str]:
    errors = {e.path: e.error for e in validation.engines if e.error is not None}
    for key, per_batch in validation.latency.items():
        if isinstance(per_batch, Failure):
            errors[f"latency {key}"] = per_batch.error
            continue
        for batch, entry in per_batch.items():
            if isinstance(entry, Failure):
                errors[f"latency {key} batch {batch}"] = entry.error
    skipped = validation.skipped_engines
    reasons = {name.split(".")[1]: reason for name, reason in skipped.items()}  # engine names: role.backend.prec
    for backend, reason in reasons.items():
        count = sum(1 for name in skipped if name.split(".")[1] == backend)
        errors[f"{backend}: {count} engine(s) built, not run here"] = reason
    return errors


def _search_info(run_dir: RunDir) -> SearchInfo | None:
    if not run_dir.arch_path.is_file():
        return None
    return SearchInfo.parse(read_json(run_dir.arch_path, "search result"), str(run_dir.arch_path))


def _engine_rows(validation: ValidationResult) -> list[Engine]:
    rows = []
    for e in validation.engines:
        agreement = e.agreement
        rows.append(
            Engine(
                role=e.role,
                backend=e.backend,
                precision=e.precision,
                key=e.key,
                top1=e.top1,
                top5=e.top5,
                top1_agreement=agreement.top1_agreement if agreement else None,
                max_abs=agreement.max_abs if agreement else None,
                cosine=agreement.cosine if agreement else None,
                error=e.error,
            )
        )
    return rows


def _model(validation: ValidationResult, role: str) -> dict[str, Any]:
    m = validation.models[role]
    latency = _role_latency(validation, role)
    return {"arch": m.arch, "flops": m.flops, "params": m.params, "top1": m.top1, "top5": m.top5, "latency": latency}


def build_report(run_dir: RunDir) -> Report:
    """The report of a validated run (``RunDir.report_json_path``; schema: docs/report_schema.md).

    Args:
        run_dir: a run whose ``validate`` stage is done.
    """
    validation = read_validation(run_dir)
    config = run_dir.read_config()
    dense, sub = validation.models["dense"], validation.models["subnet"]
    subnet = Subnet(
        **_model(validation, "subnet"),
        flops_ratio=sub.flops / dense.flops,
        params_ratio=sub.params / dense.params,
        sliced_top1=validation.sliced.top1 if validation.sliced else None,
    )
    top1_drop = dense.top1 - sub.top1 if dense.top1 is not None and sub.top1 is not None else None
    speedup = _speedups(validation, "speedup")
    targets = TargetsConfig.from_dict(config.get("targets"), section=f"{run_dir.config_path}: targets")
    return Report(
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        run_dir=str(run_dir.root),
        base_model=dense.arch.base_model,
        data=validation.data,
        search=_search_info(run_dir),
        machine=validation.machine,
        dense=Model(**_model(validation, "dense")),
        subnet=subnet,
        top1_drop=top1_drop,
        speedup=speedup,
        speedup_per_flops=_speedups(validation, "speedup_per_flops"),
        engines=_engine_rows(validation),
        errors=_errors(validation),
        targets=check_targets(targets, flops_ratio=subnet.flops_ratio, top1_drop=top1_drop, speedup=speedup),
        stages=stage_seconds(run_dir),
        latency_prediction=validation.latency_prediction,
        compare=_compare_info(run_dir),
        sweep=_sweep_info(run_dir),
    )


def _compare_info(run_dir: RunDir) -> CompareSummary | None:
    """The gist of ``RunDir.compare_json`` (``ofb-deploy compare``), or ``None`` when it was not run."""
    if not run_dir.compare_json.is_file():
        return None
    result = CompareResult.read(run_dir.compare_json, "compare results")
    methods = {
        name: CompareMethod(
            top1_mean=m.top1_mean,
            top1={seed: r.top1 for seed, r in m.seeds.items()},
            flops=m.flops_mean,
            params=m.params_mean,
            latency_ms=m.latency_ms,
        )
        for name, m in result.methods.items()
    }
    plot = run_dir.compare_plot
    return CompareSummary(budget=result.budget, dense=result.dense, methods=methods, checks=result.checks,
                          batches=result.latency.batches, plot=plot.name if plot.is_file() else None)  # fmt: skip


def _sweep_info(run_dir: RunDir) -> SweepSummary | None:
    """The rows of ``RunDir.sweep_json`` (``ofb-deploy sweep``), or ``None`` when it was not run."""
    if not run_dir.sweep_json.is_file():
        return None
    result = SweepResult.read(run_dir.sweep_json, "sweep results")
    rows = [SweepPoint.model_validate(r.model_dump()) for r in result.rows]
    plot = run_dir.sweep_plot
    return SweepSummary(budget_epochs=result.budget_epochs, dense=result.dense, rows=rows,
                        batches=result.latency.batches, plot=plot.name if plot.is_file() else None)  # fmt: skip


def stage_seconds(run_dir: RunDir) -> dict[str, float | None]:
    """Wall seconds of each finished stage as ``ofb-deploy run`` recorded them (``None``: run on its own)."""
    out = {}
    for stage in STAGES[:-1]:  # the report cannot time itself
        record = run_dir.stage_record(stage)
        if record is not None:
            out[stage] = record.get("seconds")
    return out


def check_targets(
    targets: TargetsConfig | dict[str, Any],
    flops_ratio: float,
    top1_drop: float | None,
    speedup: dict[str, dict[str, float]],
) -> dict[str, TargetCheck]:
    """Check a run's results against the run config's targets (``max_flops_ratio``, ``max_top1_drop``,
    ``min_speedup``).

    Args:
        targets: a ``TargetsConfig`` or its mapping, e.g. ``{"max_flops_ratio": 0.55, "max_top1_drop": 2.0,
            "min_speedup": {"ort-cpu": {"32": 1.3}}}``.
        flops_ratio: subnet / dense MACs.
        top1_drop: dense minus subnet top-1 in points (``None``: not measured).
        speedup: ``speedup[backend key][batch]`` as measured.
    """
    targets = targets if isinstance(targets, TargetsConfig) else TargetsConfig.from_dict(targets)
    checks: dict[str, TargetCheck] = {}
    if targets.max_flops_ratio is not None:
        limit = targets.max_flops_ratio
        checks["flops_ratio"] = TargetCheck(value=flops_ratio, limit=limit, passed=flops_ratio <= limit)
    if targets.max_top1_drop is not None and top1_drop is not None:
        limit = targets.max_top1_drop
        checks["top1_drop"] = TargetCheck(value=top1_drop, limit=limit, passed=top1_drop <= limit)
    for key, per_batch in targets.min_speedup.items():
        for batch, limit in per_batch.items():
            got = speedup.get(key, {}).get(batch)
            checks[f"speedup {key} batch {batch}"] = TargetCheck(
                value=got, limit=limit, passed=got is not None and got >= limit
            )
    return checks


def report_inputs_hash(run_dir: RunDir) -> str:
    """Hash of what the report reads (validation results, run config, search result)."""
    parts = {"validate": sha256_file(run_dir.validate_path), "config": run_dir.read_config()}
    if run_dir.arch_path.is_file():
        parts["arch"] = sha256_file(run_dir.arch_path)
    return sha256_json(parts)


def render_report(run_dir: RunDir, *, plots: bool = True) -> dict[str, Any]:
    """Write the report JSON, its Markdown and the PNG plots into ``RunDir.report_dir``.

    Returns the JSON document as written (``Report.to_dict()``; ``read_report`` reads it typed).

    Args:
        run_dir: a run whose ``validate`` stage is done.
        plots: also draw the PNG plots (matplotlib, Agg backend).
    """
    report = build_report(run_dir)  # first: it fails with one line when the run is not validated
    digest = report_inputs_hash(run_dir)
    images: list[str] = []
    if plots:
        images = draw_plots(report, run_dir)
    report.write(run_dir.report_json_path)
    atomic_write_text(run_dir.report_md_path, render_markdown(report, images))
    passed = all(c.passed for c in report.targets.values()) if report.targets else None
    run_dir.mark_done("report", digest, report=str(run_dir.report_md_path), targets_passed=passed)
    return report.to_dict()


def read_report(run_dir: RunDir) -> Report:
    """The report of a run (``RunDir.report_json_path``) as written by ``render_report``; one line if missing or old.

    Args:
        run_dir: the run.
    """
    return Report.read(run_dir.report_json_path, "report")


def report_files(run_dir: RunDir) -> list[Path]:
    """The report files that exist (JSON, Markdown, plots)."""
    plots = (run_dir.report_plot(name) for name in REPORT_PLOTS)
    return [p for p in (run_dir.report_json_path, run_dir.report_md_path, *plots) if p.is_file()]
