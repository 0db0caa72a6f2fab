"""What a finished run did, read back from its own artifacts, and the pieces every compared method shares.

``RunRecipe`` holds the run's dense model, data, search and fine-tune settings, so every method gets exactly the
same starting point, fine-tune recipe and epoch budget:

    budget = ceil(search passes over the training set) + fine-tune epochs

(rounded up, so a baseline never gets fewer epochs than OFB). ``nested_run`` searches, slices and fine-tunes in a
method's folder; ``method_result`` writes a method's result file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import METHOD_FILES, RunDir, model_json
from ofb_deploy.data import DataConfig, build_loader, build_splits, run_data
from ofb_deploy.errors import ConfigError
from ofb_deploy.finetune.run import finetune_run
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.checkpoint import load_model_dir
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.search.run import run_search
from ofb_deploy.slicing.run import SUBNET_STEM, slice_run
from ofb_deploy.train import TrainConfig, evaluate
from ofb_deploy.utils.io import atomic_write_json, read_json


@dataclass(frozen=True)
class RunRecipe:
    """What a finished run did, read back from its artifacts.

    Args:
        run_dir: the run.
        data: its data (the fine-tune's).
        search: its search settings (``RunDir.arch_path``).
        search_data: the data the search saw (a cap may make a search epoch shorter than a full pass).
        finetune: its fine-tune settings (the JSON of ``RunDir.finetune_dir``).
        align: its slice alignment.
        search_passes: search epochs times the share of the training set they saw.
        budget_epochs: the epochs every baseline fine-tunes (``ceil(search_passes) + finetune.epochs``).
    """

    run_dir: RunDir
    data: DataConfig
    search: SearchConfig
    search_data: DataConfig
    finetune: TrainConfig
    align: int
    search_passes: float
    budget_epochs: int

    @property
    def dense_dir(self) -> Path:
        return self.run_dir.dense_dir


def read_recipe(run_dir: RunDir) -> RunRecipe:
    """The recipe of a run that went through search, slice and finetune (one line if a stage is missing)."""
    arch = read_json(run_dir.require(run_dir.arch_path, "run `ofb-deploy search` first"), "search result")
    ft_path = model_json(run_dir.finetune_dir, SUBNET_STEM)
    ft_doc = read_json(run_dir.require(ft_path, "run `ofb-deploy finetune` first (compare needs a fine-tuned run)"))
    search = SearchConfig.from_dict(arch["config"])
    finetune = TrainConfig.from_dict(ft_doc["config"])
    data = run_data(run_dir)
    search_data = DataConfig.from_dict(arch["data"])
    spec = load_model_dir(run_dir.dense_dir).spec
    if spec.family != "vit":  # NOTE: the uniform-width and Torch-Pruning baselines prune a ViT's identical blocks
        raise ConfigError(f"compare and sweep cover ViT models only; {spec.base_model} is a {spec.family} model")
    full = len(build_splits(data, spec).train)
    seen = len(build_splits(search_data, spec).train)
    passes = search.epochs * seen / full
    align = int(read_json(model_json(run_dir.slice_dir, SUBNET_STEM)).get("align", 1))
    budget = math.ceil(passes - 1e-9) + finetune.epochs
    return RunRecipe(run_dir, data, search, search_data, finetune, align, passes, budget)


def dense_top1(recipe: RunRecipe) -> float:
    """Top-1 of the run's dense model on the run's validation split (the split every method is scored on)."""
    dense = load_model_dir(recipe.dense_dir)
    loader = build_loader(build_splits(recipe.data, dense.spec).val, 256, train=False, workers=0)
    return round(evaluate(dense, loader)["top1"], 4)


def method_result(folder: Path, method: str, seed: int, model_dir: Path, metrics: dict[str, Any], **extra: Any) -> dict:
    spec = load_model_dir(model_dir).spec
    doc = {
        "method": method,
        "seed": seed,
        "model_dir": str(model_dir),
        "top1": metrics.get("top1"),
        "top5": metrics.get("top5"),
        "flops": count_macs(spec).total,
        "params": count_params(spec),
        "arch": _widths(spec),
        **extra,
    }
    atomic_write_json(folder / METHOD_FILES["result"], doc)
    return doc


def _widths(spec: ArchSpec) -> dict[str, Any]:
    return {
        "embed_dim": spec.embed_dim,
        "num_heads": list(spec.num_heads),
        "head_dim": list(spec.head_dim),
        "mlp_hidden": list(spec.mlp_hidden),
    }


def nested_run(recipe: RunRecipe, folder: Path, search: SearchConfig) -> tuple[RunDir, dict[str, Any]]:
    """Search (``search``, from the run's dense model and search data), slice and fine-tune with the run's recipe at
    the search's seed, in the method folder's nested run (each stage resumes); the run and the fine-tune metrics."""
    sub = RunDir(folder / METHOD_FILES["run"], create=True)
    if not sub.is_done("search"):
        run_search(sub, search, dense_checkpoint=recipe.dense_dir, data=recipe.search_data, resume=True)
    if not sub.is_done("slice"):
        slice_run(sub, align=recipe.align)
    config = recipe.finetune.replace(seed=search.seed)
    return sub, finetune_run(sub, config, teacher=str(recipe.dense_dir), resume=True, data=recipe.data)
