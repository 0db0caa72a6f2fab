"""Make one compared model: OFB or a baseline, from the run's dense checkpoint, fine-tuned on the run's budget.

``recipe.RunRecipe`` reads what a finished run did (its dense model, data, search and fine-tune settings) from the run's
own artifacts, so the baselines get exactly the same starting point, fine-tune recipe and epoch budget:

    budget = ceil(search passes over the training set) + fine-tune epochs

(rounded up, so a baseline never gets fewer epochs than OFB). OFB spends the search passes searching (its
weights train as it searches) and the rest fine-tuning; every baseline spends the whole budget fine-tuning. A
method folder (``RunDir.compare_method_dir``) is done when its result file exists; a killed fine-tune resumes
from its per-epoch state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import METHOD_FILES, model_json
from ofb_deploy.choices import Method
from ofb_deploy.compare.baselines import scratch_subnet, torch_pruning_subnet, uniform_counts, write_counts
from ofb_deploy.compare.config import CompareConfig
from ofb_deploy.compare.latency import make_ofb_latency
from ofb_deploy.compare.recipe import RunRecipe, method_result, nested_run
from ofb_deploy.data import build_splits
from ofb_deploy.errors import ConfigError
from ofb_deploy.finetune.run import finetune_model, load_teacher
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.checkpoint import load_model_dir, save_model_dir
from ofb_deploy.slicing.run import SUBNET_STEM, slice_handwritten
from ofb_deploy.utils.io import read_json

log = logging.getLogger(__name__)

METHODS = Method.values()
DEFAULT_METHODS = METHODS[:5]  # Taylor and ofb-latency on request: `--methods ...,torch-pruning-taylor`
TAYLOR_BATCH = 256  # training images whose cross-entropy gradient scores the units


def make_ofb(recipe: RunRecipe, folder: Path, seed: int, target: str | None = None) -> dict[str, Any]:
    """OFB at ``seed`` (and ``target``): the run's own result when both match the run, else a nested run.

    Args:
        recipe: the run's recipe.
        folder: the method folder.
        seed: search and fine-tune seed.
        target: FLOPs target (default: the run's).
    """
    started = time.perf_counter()
    run = recipe.run_dir
    same = seed == recipe.search.seed == recipe.finetune.seed and target in (None, recipe.search.target_flops)
    if same:
        doc = read_json(model_json(run.finetune_dir, SUBNET_STEM))
        return method_result(
            folder, "ofb", seed, run.finetune_dir, doc["metrics"], epochs=recipe.budget_epochs, reused=True
        )
    search = recipe.search.replace(seed=seed, target_flops=target or recipe.search.target_flops)
    sub, metrics = nested_run(recipe, folder, search)
    seconds = round(time.perf_counter() - started, 1)
    return method_result(folder, "ofb", seed, sub.finetune_dir, metrics, epochs=recipe.budget_epochs, seconds=seconds)


def make_baseline(
    recipe: RunRecipe,
    folder: Path,
    method: str,
    seed: int,
    ofb: dict[str, Any],
) -> dict[str, Any]:
    """A baseline at the OFB result's MACs, fine-tuned for the whole budget with the run's recipe.

    Args:
        recipe: the run's recipe.
        folder: the method folder.
        method: ``uniform-keep-embed``, ``uniform``, ``torch-pruning`` or ``scratch``.
        seed: fine-tune (and, for scratch, initialisation) seed.
        ofb: the OFB result at this seed (its MACs and widths are the reference).
    """
    started = time.perf_counter()
    dense = load_model_dir(recipe.dense_dir)
    start = folder / METHOD_FILES["start"]
    extra: dict[str, Any] = {}
    if method in ("uniform-keep-embed", "uniform"):
        counts = uniform_counts(dense.spec, int(ofb["flops"]), recipe.search.space(), method == "uniform-keep-embed")
        slice_handwritten(write_counts(counts, folder / METHOD_FILES["widths"]), recipe.dense_dir, start)
        student = load_model_dir(start)
    elif method in ("torch-pruning", "torch-pruning-taylor"):
        batch = _taylor_batch(recipe, dense.spec, seed) if method.endswith("taylor") else None
        student, ratio = torch_pruning_subnet(dense, int(ofb["flops"]), batch)
        save_model_dir(student, start, stem=SUBNET_STEM, meta={"source_model": method, "ratio": ratio})
        extra["ratio"] = round(ratio, 5)
    elif method == "scratch":
        spec = load_model_dir(Path(ofb["model_dir"])).spec
        student = scratch_subnet(spec, seed)
    else:
        raise ConfigError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    teacher = load_teacher(recipe.run_dir, None, student)
    config = recipe.finetune.replace(epochs=recipe.budget_epochs, seed=seed)
    splits = build_splits(recipe.data, student.spec, train_augment=config.augment)
    meta = {"source_model": method, "data": recipe.data.to_dict(), "teacher": str(recipe.dense_dir)}
    metrics = finetune_model(student.train(), splits, folder, config, teacher=teacher, resume=True, meta=meta,
                             state_path=folder / METHOD_FILES["state"])  # fmt: skip
    seconds = round(time.perf_counter() - started, 1)
    return method_result(folder, method, seed, folder, metrics, epochs=recipe.budget_epochs, seconds=seconds, **extra)


def _taylor_batch(recipe: RunRecipe, spec: ArchSpec, seed: int) -> tuple[Any, Any]:
    """``TAYLOR_BATCH`` training images and labels (seeded) for the Taylor importance."""
    import torch

    train = build_splits(recipe.data, spec).train
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=g)[:TAYLOR_BATCH].tolist()
    images, labels = zip(*(train[i] for i in idx), strict=True)
    return torch.stack(images), torch.as_tensor(labels)


def make_method(
    recipe: RunRecipe,
    folder: Path,
    method: str,
    seed: int,
    ofb: dict | None,
    target: str | None = None,
    timing: Any = None,
) -> dict[str, Any]:
    """The result of one method (read back when its folder is done, else made now).

    Args:
        recipe: the run's recipe.
        folder: the method folder.
        method: one of ``METHODS``.
        seed: the seed.
        ofb: the OFB result the baselines are held to (``None`` for OFB itself).
        target: OFB's FLOPs target (default: the run's).
        timing: the compare's ``CompareConfig`` (``ofb-latency`` times its budget with it; default settings if
            ``None``).
    """
    done = folder / METHOD_FILES["result"]
    if done.is_file():
        return read_json(done, "method result")
    folder.mkdir(parents=True, exist_ok=True)
    if method == "ofb":
        return make_ofb(recipe, folder, seed, target)
    if ofb is None:
        raise ConfigError(f"{method} needs the OFB result of seed {seed} first")
    if method == "ofb-latency":
        return make_ofb_latency(recipe, folder, seed, ofb, timing or CompareConfig())
    return make_baseline(recipe, folder, method, seed, ofb)
