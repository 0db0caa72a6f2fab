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
from ofb_deploy.compare.latency import check_latency_backend
from ofb_deploy.compare.methods import make_method
from ofb_deploy.compare.plots import plot_methods
from ofb_deploy.compare.recipe import RunRecipe, dense_top1, read_recipe
from ofb_deploy.compare.results import (
    Budget,
    Checks,
    CompareLatency,
    CompareResult,
    DenseResult,
    EqualLatency,
    LatencyMs,
    MethodResult,
    MethodSummary,
    PairedDifference,
    SeedLatency,
)
from ofb_deploy.compare.stats import paired_differences
from ofb_deploy.compare.timing import time_models
from ofb_deploy.data import build_splits
from ofb_deploy.models.checkpoint import load_model_dir
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.timing.latency import machine_info
from ofb_deploy.validate.results import Machine

log = logging.getLogger(__name__)


def _label(method: str, seed: int) -> str:
    return f"{method}/seed{seed}"


def summarize(results: dict[str, list[MethodResult]], latency: dict[str, LatencyMs]) -> dict[str, MethodSummary]:
    """Per method: each seed's result, the mean and spread of top-1, mean MACs/params and mean latency.

    Args:
        results: each method's result at every seed.
        latency: label (``method/seedN``) to its ORT CPU median per batch.
    """
    methods: dict[str, MethodSummary] = {}
    for method, runs in results.items():
        top1 = [r.top1 for r in runs]
        lat = [latency[_label(method, r.seed)] for r in runs]
        methods[method] = MethodSummary(
            seeds={str(r.seed): r for r in runs},
            top1_mean=round(statistics.fmean(top1), 4),
            top1_min=min(top1),
            top1_max=max(top1),
            flops_mean=statistics.fmean(r.flops for r in runs),
            params_mean=statistics.fmean(r.params for r in runs),
            latency_ms={b: round(statistics.fmean(x[b] for x in lat), 4) for b in lat[0]},
        )
    return methods


LATENCY_TOLERANCE = 0.10  # ofb-latency's measured latency within 10% of the OFB subnet's (issue 12)


def _checks(methods: dict[str, MethodSummary], latency: dict[str, LatencyMs], batch: int) -> Checks:
    """Equal MACs (within 1% of OFB at each seed; ``ofb-latency`` is held at OFB's latency instead), equal epochs,
    OFB minus each method paired by seed (``stats.paired_differences``), and whether that mean is at least 0."""
    ofb = methods["ofb"]
    macs_ok, epochs_ok = True, True
    for name, summary in methods.items():
        for seed, run in summary.seeds.items():
            ref = ofb.seeds[seed]
            if name != "ofb-latency":
                macs_ok &= abs(run.flops - ref.flops) <= MAC_TOLERANCE * ref.flops
            epochs_ok &= run.epochs == ref.epochs
    ofb_top1 = {seed: r.top1 for seed, r in ofb.seeds.items()}
    paired = {
        m: PairedDifference.model_validate(paired_differences(ofb_top1, {s: r.top1 for s, r in d.seeds.items()}))
        for m, d in methods.items()
        if m != "ofb"
    }
    # the verdict is on the paired differences (OFB minus the method at each seed), not on the means' difference
    beats = {m: p.mean is not None and p.mean >= 0 for m, p in paired.items()}
    equal_latency = None
    if "ofb-latency" in methods and str(batch) in latency["dense"]:
        equal_latency = _latency_check(methods, latency, str(batch))
    return Checks(equal_macs_within_1pct=bool(macs_ok), equal_epochs=bool(epochs_ok), ofb_at_or_above=beats,
                  paired=paired, equal_latency=equal_latency)  # fmt: skip


def _latency_check(methods: dict[str, MethodSummary], latency: dict[str, LatencyMs], batch: str) -> EqualLatency:
    """Per seed: ofb-latency's latency over OFB's (timed together here) and its top-1 against OFB's."""
    seeds = {}
    for seed, run in methods["ofb-latency"].seeds.items():
        ratio = latency[_label("ofb-latency", int(seed))][batch] / latency[_label("ofb", int(seed))][batch]
        top1 = methods["ofb"].seeds[seed].top1
        seeds[seed] = SeedLatency(latency_ratio=round(ratio, 4), top1=run.top1, ofb_top1=top1,
                                  top1_at_or_above_ofb=run.top1 >= top1)  # fmt: skip
    return EqualLatency(
        batch=int(batch),
        seeds=seeds,
        within_10pct=all(abs(s.latency_ratio - 1) <= LATENCY_TOLERANCE for s in seeds.values()),
        top1_at_or_above_ofb=all(s.top1_at_or_above_ofb for s in seeds.values()),
    )


def method_result(doc: dict[str, Any], folder: Path) -> MethodResult:
    """A method's result as ``methods.make_method`` returns it (made now or read back from its folder), typed.

    Args:
        doc: the result document.
        folder: the method folder (how an error names it).
    """
    return MethodResult.parse(doc, str(folder / METHOD_FILES["result"]))


def compare_run(run_dir: RunDir, config: CompareConfig) -> dict[str, Any]:
    """Run every method at every seed (finished ones are read back), time them, write ``RunDir.compare_json``.

    Returns the document as written (``CompareResult.to_dict()``).

    Args:
        run_dir: a run that finished search, slice and finetune.
        config: seeds, methods and timing.
    """
    recipe = read_recipe(run_dir)
    if "ofb-latency" in config.methods:
        check_latency_backend(recipe)  # before any method trains
    results: dict[str, list[MethodResult]] = {m: [] for m in config.methods}
    for seed in config.seeds:
        folder = run_dir.compare_method_dir(seed, "ofb")
        ofb = make_method(recipe, folder, "ofb", seed, None)
        results["ofb"].append(method_result(ofb, folder))
        for method in config.methods:
            if method != "ofb":
                folder = run_dir.compare_method_dir(seed, method)
                results[method].append(method_result(make_method(recipe, folder, method, seed, ofb, timing=config),
                                                     folder))  # fmt: skip
                log.info("compare seed %d: %s top-1 %.2f%%", seed, method, results[method][-1].top1)
    result = _document(run_dir, recipe, config, results)
    result.write(run_dir.compare_json)
    plot_methods(result, run_dir.compare_plot)
    return result.to_dict()


def _document(
    run_dir: RunDir, recipe: RunRecipe, config: CompareConfig, results: dict[str, list[MethodResult]]
) -> CompareResult:
    dense = load_model_dir(run_dir.dense_dir)
    models = {"dense": run_dir.dense_dir}
    onnx = {"dense": run_dir.onnx_path("dense")}
    for method, runs in results.items():
        for r in runs:
            label = _label(method, r.seed)
            models[label] = Path(r.model_dir)
            onnx[label] = run_dir.compare_method_dir(r.seed, method) / METHOD_FILES["onnx"]
    val = build_splits(recipe.data, dense.spec).val
    if "ofb-latency" in results and recipe.search.latency_batch not in config.batches:
        config = config.replace(batches=tuple(sorted({*config.batches, recipe.search.latency_batch})))
    latency = time_models(models, onnx, val, config)
    methods = summarize(results, latency)
    return CompareResult(
        run_dir=str(run_dir.root),
        config=config.to_dict(),
        budget=Budget(
            epochs=recipe.budget_epochs,
            search_passes=round(recipe.search_passes, 4),
            finetune_epochs=recipe.finetune.epochs,
            finetune=recipe.finetune.to_dict(),
        ),
        dense=DenseResult(
            top1=dense_top1(recipe),
            flops=count_macs(dense.spec).total,
            params=count_params(dense.spec),
            latency_ms=latency["dense"],
        ),
        methods=methods,
        checks=_checks(methods, latency, recipe.search.latency_batch),
        latency=CompareLatency(batches=list(config.batches), machine=Machine.model_validate(machine_info())),
    )
