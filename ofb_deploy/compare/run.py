"""``compare_run``: OFB against the pruning baselines on one budget, into ``RunDir.compare_json``.

For every seed, OFB comes first (the run's own result at the run's seed, a nested search + fine-tune at other
seeds); then each baseline is cut from the same dense checkpoint to the OFB subnet's MACs and fine-tuned with the
run's recipe for the same total epochs (``methods.py``). Top-1 comes from the fine-tune's evaluation on the
run's validation split. Latency: every model is exported to ONNX and all of them, dense included, are timed on
ONNX Runtime CPU in one process, interleaved in alternating rounds (``validate.interleaved``), at each batch.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import METHOD_FILES, RunDir
from ofb_deploy.compare.baselines import MAC_TOLERANCE
from ofb_deploy.compare.config import CompareConfig
from ofb_deploy.compare.methods import RunRecipe, dense_top1, make_method, read_recipe
from ofb_deploy.data import build_splits, make_reader
from ofb_deploy.models.checkpoint import load_model_dir
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.utils.io import atomic_write_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def _label(method: str, seed: int) -> str:
    return f"{method}/seed{seed}"


def time_models(
    models: dict[str, Path],
    onnx_paths: dict[str, Path],
    data_reader_source: Any,
    config: CompareConfig,
) -> dict[str, dict[str, float]]:
    """ORT CPU median latency (ms) of every model at every batch, interleaved in one process.

    Args:
        models: label to model folder (exported to ``onnx_paths[label]`` when that file is missing).
        onnx_paths: label to ONNX path.
        data_reader_source: the validation data set (real images feed the timing).
        config: batches and timing settings.
    """
    from ofb_deploy.engines import make_runner
    from ofb_deploy.export.onnx import export_onnx
    from ofb_deploy.validate.interleaved import measure_interleaved

    for label, folder in models.items():
        if not onnx_paths[label].is_file():
            export_onnx(load_model_dir(folder).eval(), onnx_paths[label])
    out: dict[str, dict[str, float]] = {label: {} for label in models}
    for batch in config.batches:
        feed = make_reader(data_reader_source, batch_size=batch, limit=batch)
        runners = {label: make_runner("ort-cpu", onnx_paths[label], threads=config.threads) for label in models}
        result = measure_interleaved(runners, feed, rounds=config.rounds, warmup_s=config.warmup_s,
                                     min_iters=config.min_iters, min_time_s=config.min_time_s)  # fmt: skip
        for label, report in result.reports.items():
            out[label][str(batch)] = round(report.median_ms, 4)
    return out


def summarize(results: dict[str, list[dict[str, Any]]], latency: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per method: each seed's result, the mean and spread of top-1, mean MACs/params and mean latency."""
    methods: dict[str, Any] = {}
    for method, runs in results.items():
        top1 = [r["top1"] for r in runs]
        lat = [latency[_label(method, r["seed"])] for r in runs]
        methods[method] = {
            "seeds": {str(r["seed"]): r for r in runs},
            "top1_mean": round(statistics.fmean(top1), 4),
            "top1_min": min(top1),
            "top1_max": max(top1),
            "flops_mean": statistics.fmean(r["flops"] for r in runs),
            "params_mean": statistics.fmean(r["params"] for r in runs),
            "latency_ms": {b: round(statistics.fmean(x[b] for x in lat), 4) for b in lat[0]},
        }
    return methods


def _checks(methods: dict[str, Any]) -> dict[str, Any]:
    """Equal MACs (within 1% of OFB at each seed), equal epochs, and whether OFB's mean top-1 is at or above."""
    ofb = methods["ofb"]
    macs_ok, epochs_ok = True, True
    for doc in methods.values():
        for seed, run in doc["seeds"].items():
            ref = ofb["seeds"][seed]
            macs_ok &= abs(run["flops"] - ref["flops"]) <= MAC_TOLERANCE * ref["flops"]
            epochs_ok &= run["epochs"] == ref["epochs"]
    beats = {m: ofb["top1_mean"] >= d["top1_mean"] for m, d in methods.items() if m != "ofb"}
    return {"equal_macs_within_1pct": bool(macs_ok), "equal_epochs": bool(epochs_ok), "ofb_at_or_above": beats}


def compare_run(run_dir: RunDir, config: CompareConfig) -> dict[str, Any]:
    """Run every method at every seed (finished ones are read back), time them, write ``RunDir.compare_json``.

    Args:
        run_dir: a run that finished search, slice and finetune.
        config: seeds, methods and timing.
    """
    recipe = read_recipe(run_dir)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in config.methods}
    for seed in config.seeds:
        ofb = make_method(recipe, run_dir.compare_method_dir(seed, "ofb"), "ofb", seed, None)
        results["ofb"].append(ofb)
        for method in config.methods:
            if method != "ofb":
                folder = run_dir.compare_method_dir(seed, method)
                results[method].append(make_method(recipe, folder, method, seed, ofb))
                log.info("compare seed %d: %s top-1 %.2f%%", seed, method, results[method][-1]["top1"])
    doc = _document(run_dir, recipe, config, results)
    atomic_write_json(run_dir.compare_json, doc)
    from ofb_deploy.compare.plots import plot_methods

    plot_methods(doc, run_dir.compare_plot)
    return doc


def _document(run_dir: RunDir, recipe: RunRecipe, config: CompareConfig, results: dict) -> dict[str, Any]:
    from ofb_deploy.validate.latency import machine_info

    dense = load_model_dir(run_dir.dense_dir)
    models = {"dense": run_dir.dense_dir}
    onnx = {"dense": run_dir.onnx_path("dense")}
    for method, runs in results.items():
        for r in runs:
            label = _label(method, r["seed"])
            models[label] = Path(r["model_dir"])
            onnx[label] = run_dir.compare_method_dir(r["seed"], method) / METHOD_FILES["onnx"]
    val = build_splits(recipe.data, dense.spec).val
    latency = time_models(models, onnx, val, config)
    methods = summarize(results, latency)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_dir": str(run_dir.root),
        "config": config.to_dict(),
        "budget": {
            "epochs": recipe.budget_epochs,
            "search_passes": round(recipe.search_passes, 4),
            "finetune_epochs": recipe.finetune.epochs,
            "finetune": recipe.finetune.to_dict(),
        },
        "dense": {
            "top1": dense_top1(recipe),
            "flops": count_macs(dense.spec).total,
            "params": count_params(dense.spec),
            "latency_ms": latency["dense"],
        },
        "methods": methods,
        "checks": _checks(methods),
        "latency": {"backend": "ort-cpu", "batches": list(config.batches), "machine": machine_info()},
    }
