"""Reports of a run: the report JSON (stable schema, docs/report_schema.md), its Markdown view and PNG plots.

Everything is rendered from files already in the run directory (the validation results, the model folders, the
search result and the run config), so ``ofb-deploy report RUN`` re-renders without measuring anything.
``build_report`` makes the JSON document; ``render_markdown`` and ``plots.py`` turn it into the human views.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import REPORT_PLOTS, ROLES, RunDir
from ofb_deploy.utils.io import atomic_write_json, atomic_write_text, read_json, sha256_file, sha256_json
from ofb_deploy.validate.config import TargetsConfig
from ofb_deploy.validate.validate import read_validation

REPORT_SCHEMA_VERSION = 1
LATENCY_FIELDS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "throughput", "iterations")


def _role_latency(latency: dict[str, Any], role: str) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, per_batch in latency.items():
        rows = {
            batch: {f: entry[role][f] for f in LATENCY_FIELDS}
            for batch, entry in per_batch.items()
            if isinstance(entry, dict) and role in entry
        }
        if rows:
            out[key] = rows
    return out


def _speedups(latency: dict[str, Any], field: str) -> dict[str, dict[str, float]]:
    return {
        key: {b: e[field] for b, e in per_batch.items() if isinstance(e, dict) and field in e}
        for key, per_batch in latency.items()
        if isinstance(per_batch, dict) and any(isinstance(e, dict) and field in e for e in per_batch.values())
    }


def _errors(validation: dict[str, Any]) -> dict[str, str]:
    errors = {e["path"]: e["error"] for e in validation.get("engines", []) if "error" in e}
    for key, per_batch in validation.get("latency", {}).items():
        if "error" in per_batch and isinstance(per_batch["error"], str):
            errors[f"latency {key}"] = per_batch["error"]
        for batch, entry in per_batch.items():
            if isinstance(entry, dict) and "error" in entry:
                errors[f"latency {key} batch {batch}"] = entry["error"]
    skipped = validation.get("skipped_engines", {})
    reasons = {name.split(".")[1]: reason for name, reason in skipped.items()}  # engine names: role.backend.prec
    for backend, reason in reasons.items():
        count = sum(1 for name in skipped if name.split(".")[1] == backend)
        errors[f"{backend}: {count} engine(s) built, not run here"] = reason
    return errors


def _search_info(run_dir: RunDir) -> dict[str, Any] | None:
    if not run_dir.arch_path.is_file():
        return None
    arch = read_json(run_dir.arch_path, "search result")
    keys = ("base_model", "dense_flops", "target_flops", "flops", "converged", "unconverged", "epochs", "seed")
    return {k: arch[k] for k in keys if k in arch}


def _engine_rows(validation: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for e in validation.get("engines", []):
        row = {k: e.get(k) for k in ("role", "backend", "precision", "key", "top1", "top5")}
        agreement = e.get("agreement") or {}
        row["top1_agreement"] = agreement.get("top1_agreement")
        row["max_abs"] = agreement.get("max_abs")
        row["cosine"] = agreement.get("cosine")
        if "error" in e:
            row["error"] = e["error"]
        rows.append(row)
    return rows


def build_report(run_dir: RunDir) -> dict[str, Any]:
    """The report document of a validated run (``RunDir.report_json_path``; schema: docs/report_schema.md).

    Args:
        run_dir: a run whose ``validate`` stage is done.
    """
    validation = read_validation(run_dir)
    config = run_dir.read_config()
    latency = validation.get("latency", {})
    models = validation["models"]
    doc: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "run_dir": str(run_dir.root),
        "base_model": models["dense"]["arch"]["base_model"],
        "data": validation.get("data", {}),
        "search": _search_info(run_dir),
        "machine": validation.get("machine", {}),
    }
    for role in ROLES:
        m = models[role]
        doc[role] = {
            "arch": m["arch"],
            "flops": m["flops"],
            "params": m["params"],
            "top1": m.get("top1"),
            "top5": m.get("top5"),
            "latency": _role_latency(latency, role),
        }
    doc["subnet"]["flops_ratio"] = models["subnet"]["flops"] / models["dense"]["flops"]
    doc["subnet"]["params_ratio"] = models["subnet"]["params"] / models["dense"]["params"]
    doc["subnet"]["sliced_top1"] = (validation.get("sliced") or {}).get("top1")
    top1 = (doc["dense"]["top1"], doc["subnet"]["top1"])
    doc["top1_drop"] = top1[0] - top1[1] if None not in top1 else None
    doc["speedup"] = _speedups(latency, "speedup")
    doc["speedup_per_flops"] = _speedups(latency, "speedup_per_flops")
    doc["engines"] = _engine_rows(validation)
    doc["errors"] = _errors(validation)
    targets = TargetsConfig.from_dict(config.get("targets"), section=f"{run_dir.config_path}: targets")
    doc["targets"] = check_targets(doc, targets)
    doc["stages"] = stage_seconds(run_dir)
    doc["latency_prediction"] = validation.get("latency_prediction")
    doc["compare"] = _compare_info(run_dir)
    doc["sweep"] = _sweep_info(run_dir)
    return doc


def _compare_info(run_dir: RunDir) -> dict[str, Any] | None:
    """The gist of ``RunDir.compare_json`` (``ofb-deploy compare``), or ``None`` when it was not run."""
    if not run_dir.compare_json.is_file():
        return None
    doc = read_json(run_dir.compare_json, "compare results")
    methods = {
        name: {
            "top1_mean": m["top1_mean"],
            "top1": {seed: r["top1"] for seed, r in m["seeds"].items()},
            "flops": m["flops_mean"],
            "params": m["params_mean"],
            "latency_ms": m["latency_ms"],
        }
        for name, m in doc["methods"].items()
    }
    plot = run_dir.compare_plot
    return {"budget": doc["budget"], "dense": doc["dense"], "methods": methods, "checks": doc["checks"],
            "batches": doc["latency"]["batches"], "plot": plot.name if plot.is_file() else None}  # fmt: skip


def _sweep_info(run_dir: RunDir) -> dict[str, Any] | None:
    """The rows of ``RunDir.sweep_json`` (``ofb-deploy sweep``), or ``None`` when it was not run."""
    if not run_dir.sweep_json.is_file():
        return None
    doc = read_json(run_dir.sweep_json, "sweep results")
    keys = ("target", "method", "top1", "flops", "flops_ratio", "params", "latency_ms")
    rows = [{k: r[k] for k in keys} for r in doc["rows"]]
    plot = run_dir.sweep_plot
    return {"budget_epochs": doc["budget_epochs"], "dense": doc["dense"], "rows": rows,
            "batches": doc["latency"]["batches"], "plot": plot.name if plot.is_file() else None}  # fmt: skip


def stage_seconds(run_dir: RunDir) -> dict[str, float | None]:
    """Wall seconds of each finished stage as ``ofb-deploy run`` recorded them (``None``: run on its own)."""
    from ofb_deploy.artifacts import STAGES

    out = {}
    for stage in STAGES[:-1]:  # the report cannot time itself
        record = run_dir.stage_record(stage)
        if record is not None:
            out[stage] = record.get("seconds")
    return out


def check_targets(doc: dict[str, Any], targets: TargetsConfig | dict[str, Any]) -> dict[str, Any]:
    """Compare the report with the run config's targets (``max_flops_ratio``, ``max_top1_drop``, ``min_speedup``).

    Args:
        doc: the report document (``dense``, ``subnet``, ``speedup`` filled in).
        targets: a ``TargetsConfig`` or its mapping, e.g. ``{"max_flops_ratio": 0.55, "max_top1_drop": 2.0,
            "min_speedup": {"ort-cpu": {"32": 1.3}}}``.
    """
    targets = targets if isinstance(targets, TargetsConfig) else TargetsConfig.from_dict(targets)
    checks: dict[str, Any] = {}
    if targets.max_flops_ratio is not None:
        got = doc["subnet"]["flops_ratio"]
        limit = targets.max_flops_ratio
        checks["flops_ratio"] = {"value": got, "limit": limit, "passed": got <= limit}
    if targets.max_top1_drop is not None and doc.get("top1_drop") is not None:
        got = doc["top1_drop"]
        checks["top1_drop"] = {"value": got, "limit": targets.max_top1_drop, "passed": got <= targets.max_top1_drop}
    for key, per_batch in targets.min_speedup.items():
        for batch, limit in per_batch.items():
            got = doc["speedup"].get(key, {}).get(batch)
            checks[f"speedup {key} batch {batch}"] = {
                "value": got,
                "limit": limit,
                "passed": got is not None and got >= limit,
            }
    return checks


def report_inputs_hash(run_dir: RunDir) -> str:
    """Hash of what the report reads (validation results, run config, search result)."""
    parts = {"validate": sha256_file(run_dir.validate_path), "config": run_dir.read_config()}
    if run_dir.arch_path.is_file():
        parts["arch"] = sha256_file(run_dir.arch_path)
    return sha256_json(parts)


def render_report(run_dir: RunDir, *, plots: bool = True) -> dict[str, Any]:
    """Write the report JSON, its Markdown and the PNG plots into ``RunDir.report_dir``; return the JSON document.

    Args:
        run_dir: a run whose ``validate`` stage is done.
        plots: also draw the PNG plots (matplotlib, Agg backend).
    """
    from ofb_deploy.report.markdown import render_markdown

    doc = build_report(run_dir)  # first: it fails with one line when the run is not validated
    digest = report_inputs_hash(run_dir)
    images: list[str] = []
    if plots:
        from ofb_deploy.report.plots import draw_plots

        images = draw_plots(doc, run_dir)
    atomic_write_json(run_dir.report_json_path, doc)
    atomic_write_text(run_dir.report_md_path, render_markdown(doc, images))
    passed = all(c["passed"] for c in doc["targets"].values()) if doc["targets"] else None
    run_dir.mark_done("report", digest, report=str(run_dir.report_md_path), targets_passed=passed)
    return doc


def report_files(run_dir: RunDir) -> list[Path]:
    """The report files that exist (JSON, Markdown, plots)."""
    plots = (run_dir.report_plot(name) for name in REPORT_PLOTS)
    return [p for p in (run_dir.report_json_path, run_dir.report_md_path, *plots) if p.is_file()]
