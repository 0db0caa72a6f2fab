"""``sweep_run``: OFB and the keep-embed uniform baseline over several FLOPs targets, into ``RunDir.sweep_json``.

Each target gets a searched, fine-tuned OFB subnet (a nested run; the run's own result where the target is the
run's) and the keep-embed uniform baseline at that subnet's MACs with the same epochs (``methods.py``). All models and
the dense one are then timed together on ONNX Runtime CPU, interleaved, at each batch (``timing.time_models``), so
the Pareto plot of top-1 against measured latency compares like with like.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import METHOD_FILES, RunDir
from ofb_deploy.compare.config import CompareConfig
from ofb_deploy.compare.methods import make_method
from ofb_deploy.compare.plots import plot_pareto
from ofb_deploy.compare.recipe import dense_top1, read_recipe
from ofb_deploy.compare.results import CompareLatency, DenseResult, MethodResult, SweepResult, SweepRow
from ofb_deploy.compare.run import method_result
from ofb_deploy.compare.timing import time_models
from ofb_deploy.data import build_splits
from ofb_deploy.errors import ConfigError
from ofb_deploy.models.checkpoint import load_model_dir
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.models.space import resolve_flops_target

log = logging.getLogger(__name__)

SWEEP_METHODS = ("ofb", "uniform-keep-embed")


def _folder(run_dir: RunDir, recipe: Any, spec: Any, target: str, method: str) -> Path:
    """A method's folder at ``target``: at the run's own target and seed, the ``compare`` folder (same result)."""
    space, own = recipe.search.space(), recipe.search.target_flops
    if own is not None and resolve_flops_target(target, spec, space) == resolve_flops_target(own, spec, space):
        return run_dir.compare_method_dir(recipe.search.seed, method)
    return run_dir.sweep_method_dir(target, method)


def sweep_run(run_dir: RunDir, targets: list[str], config: CompareConfig | None = None) -> dict[str, Any]:
    """Search, fine-tune and time OFB and keep-embed uniform widths at every FLOPs target; write ``RunDir.sweep_json``.

    Returns the document as written (``SweepResult.to_dict()``).

    Args:
        run_dir: a run that finished search, slice and finetune (its dense model, data and recipe are reused).
        targets: FLOPs targets as ``--target-flops`` takes them (``0.3``, ``800M``); checked before any work.
        config: timing settings (``seeds`` is ignored: the sweep uses the run's seed).
    """
    config = config or CompareConfig()
    if not targets or len(set(targets)) != len(targets):
        raise ConfigError(f"sweep needs distinct FLOPs targets, got {targets}")
    recipe = read_recipe(run_dir)
    dense = load_model_dir(run_dir.dense_dir)
    for target in targets:  # fail on an impossible target before hours of work
        resolve_flops_target(target, dense.spec, recipe.search.space())
    seed = recipe.search.seed
    made: list[tuple[str, MethodResult]] = []
    for target in targets:
        ofb_folder = _folder(run_dir, recipe, dense.spec, target, "ofb")
        ofb = make_method(recipe, ofb_folder, "ofb", seed, None, target)
        uniform_folder = _folder(run_dir, recipe, dense.spec, target, "uniform-keep-embed")
        uniform = make_method(recipe, uniform_folder, "uniform-keep-embed", seed, ofb)
        made += [(target, method_result(ofb, ofb_folder)), (target, method_result(uniform, uniform_folder))]
        log.info("sweep %s: ofb %.2f%%, uniform-keep-embed %.2f%%", target, ofb["top1"], uniform["top1"])
    models = {"dense": run_dir.dense_dir}
    onnx = {"dense": run_dir.onnx_path("dense")}
    for target, r in made:
        models[f"{r.method}/{target}"] = Path(r.model_dir)
        onnx[f"{r.method}/{target}"] = run_dir.sweep_method_dir(target, r.method) / METHOD_FILES["onnx"]
    latency = time_models(models, onnx, build_splits(recipe.data, dense.spec).val, config)
    dense_macs = count_macs(dense.spec).total
    rows = [
        SweepRow(**r.model_dump(), target=target, latency_ms=latency[f"{r.method}/{target}"],
                 flops_ratio=round(r.flops / dense_macs, 4))
        for target, r in made
    ]  # fmt: skip
    result = SweepResult(
        run_dir=str(run_dir.root),
        targets=targets,
        methods=list(SWEEP_METHODS),
        budget_epochs=recipe.budget_epochs,
        dense=DenseResult(
            top1=dense_top1(recipe), flops=dense_macs, params=count_params(dense.spec), latency_ms=latency["dense"]
        ),
        rows=rows,
        latency=CompareLatency(batches=list(config.batches)),
    )
    result.write(run_dir.sweep_json)
    plot_pareto(result, run_dir.sweep_plot)
    return result.to_dict()
