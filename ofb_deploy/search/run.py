"""``run_search``: the search stage of a run directory (what ``ofb-deploy search`` calls).

Loads the dense model, builds the supernet over it, runs the OFB loop (``loop.SearchState``) with a resume
checkpoint each epoch, finalises the modules still open at the end jointly, closest to the FLOPs target
(``finalize.py``), evaluates the result and writes it to ``RunDir.arch_path`` and
``RunDir.searched_weights_path`` (``result.py``).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ofb_deploy.artifacts import RunDir, model_weight_files
from ofb_deploy.data import (
    DataConfig,
    build_loader,
    build_splits,
    dataset_info,
    record_run_data,
    run_data,
    set_epoch,
)
from ofb_deploy.errors import ConfigError
from ofb_deploy.models.checkpoint import load_dense
from ofb_deploy.models.flops import count_macs
from ofb_deploy.models.importance import attn_importance, mlp_importance, stage_importance
from ofb_deploy.models.space import parse_latency, resolve_flops_target, smallest_spec
from ofb_deploy.profile.measure import profile_model
from ofb_deploy.profile.table import LatencyTable, arch_key
from ofb_deploy.search.build import build_supernet
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.search.cost import LatencyCost
from ofb_deploy.search.loop import SearchState
from ofb_deploy.search.pruning import describe
from ofb_deploy.search.result import arch_document, searched_spec, write_result
from ofb_deploy.search.select import held_out
from ofb_deploy.search.supernet import SupernetBase
from ofb_deploy.train import evaluate
from ofb_deploy.train.config import DistillConfig
from ofb_deploy.utils.dist import barrier, init_distributed, is_main
from ofb_deploy.utils.io import sha256_file, sha256_json
from ofb_deploy.utils.progress import make_progress
from ofb_deploy.utils.threads import set_cpu_threads

log = logging.getLogger(__name__)


def load_dense_model(
    run_dir: RunDir,
    checkpoint: Path | str | None,
    model_name: str | None,
    data: DataConfig,
) -> tuple[torch.nn.Module, Path]:
    """The dense model to search and where it came from: ``checkpoint`` or the run's dense model.

    Args:
        run_dir: the run directory (``RunDir.dense_dir`` is the default checkpoint).
        checkpoint: a model folder or a weights file (``models.checkpoint.load_dense``).
        model_name: registry name: needed for a weights file; for a folder it must name the model it holds.
        data: the data config (classes and channels of a weights file's model when its tensors do not say).
    """
    path = Path(checkpoint) if checkpoint is not None else run_dir.dense_dir
    info = dataset_info(data) if path.is_file() else None
    model = load_dense(path, model_name, num_classes=info and info.num_classes, in_chans=info and info.in_chans)
    return model, path


def resolve_latency(config: SearchConfig, spec: Any) -> tuple[LatencyCost, float] | None:
    """The latency budget of a search: (cost from the table, target ms), or ``None`` without a latency target.

    The table is read from ``latency_table`` (it must be of this model) or profiled here on ``latency_backend``
    at ``latency_batch`` and ``latency_threads`` (cached); a share (``0.6x``) is of the dense latency the table
    predicts. A target the space cannot reach fails before any training.
    """
    if config.target_latency is None:
        return None

    value, unit = parse_latency(config.target_latency)
    if config.latency_table is not None:
        table = LatencyTable.load(config.latency_table)
        if table.key.get("arch") != arch_key(spec):
            raise ConfigError(
                f"latency table {config.latency_table} was profiled for another model than {spec.base_model}"
            )
    else:
        table = profile_model(spec, backend=str(config.latency_backend), batch=config.latency_batch,
                              threads=config.latency_threads, space=config.space())  # fmt: skip
    cost = LatencyCost(spec, table)
    low, high = cost.of_spec(smallest_spec(spec, config.space())), cost.dense
    target = value * high if unit == "x" else value
    if not low <= target <= high:
        raise ConfigError(
            f"latency target {target:.3f} ms is outside what the space reaches on {table.key['backend']} at batch "
            f"{table.key['batch']}: {low:.3f} ms (smallest subnet) to {high:.3f} ms (dense)"
        )
    return cost, target


def hold_out(data: DataConfig, spec: Any, train: Any, dense: torch.nn.Module, config: SearchConfig) -> tuple[Any, Any]:
    """Split ``select_images`` training images (at most a fifth) off the search's training set for the joint choice.

    Returns the search's training set without them and the ``select.HeldOut`` (the images without augmentation,
    their labels and the dense model's logits).
    """
    from torch.utils.data import Subset

    n = len(train)
    k = min(config.select_images, n // 5)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 1000003 + 7))
    held_idx, rest = order[:k].sort().values.tolist(), order[k:].sort().values.tolist()
    plain = build_splits(data, spec, train_augment=False).train  # the same images, in the same order, unaugmented
    held = held_out(Subset(plain, held_idx), dense, DistillConfig(label_smoothing=config.label_smoothing))
    return Subset(train, rest), held


def init_scores_from_weights(supernet: SupernetBase) -> None:
    """Order every importance score like the dense weights' L2 magnitude (``score_init: magnitude``)."""
    state = {k: v.detach() for k, v in supernet.model.state_dict().items()}
    spec = supernet.spec
    for stage, mask in enumerate(supernet.stage_masks):
        mask.init_scores(stage_importance(state, spec, stage))
    for i, (attn, mlp) in enumerate(zip(supernet.attn_masks, supernet.mlp_masks, strict=True)):
        attn.init_scores(attn_importance(state, spec, i))
        mlp.init_scores(mlp_importance(state, spec, i))


def _fingerprint(source: Path) -> str:
    if source.is_file():
        return sha256_file(source)
    return sha256_json({p.name: sha256_file(p) for p in model_weight_files(source)})


def _digest(net: SupernetBase) -> str:
    """sha256 of the searched weights and scales (identical on every rank under torchrun)."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in sorted(net.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _status(state: SearchState, terms: dict[str, float]) -> str:
    net = state.supernet
    alive = {"embed": 0, "attn": 0, "mlp": 0}
    for m in net.masks():
        alive[m.kind] += len(m.candidates)
    loss = " ".join(f"{k} {terms[k]:.3f}" for k in ("ce", "mim", "onehot", "flops", "latency") if k in terms)
    budget = f"F {terms['soft_macs'] / 1e6:.2f}M"
    if state.target_macs is not None:
        budget += f"/{state.target_macs / 1e6:.2f}M"
    if state.latency is not None and "soft_ms" in terms:
        budget += f" L {terms['soft_ms']:.3f}/{state.latency[1]:.3f}ms"
    return (
        f"{loss} | {budget} | "
        f"cand e{alive['embed']} a{alive['attn']} m{alive['mlp']} | final {sum(m.final for m in net.masks())}"
        f"/{len(net.masks())}"
    )


def _latency_summary(state: SearchState) -> dict[str, Any] | None:
    """Predicted latency of the result and the table it came from (``None`` without a latency target)."""
    if state.latency is None:
        return None

    cost, target = state.latency
    key = cost.table.key
    return {
        "target": state.config.target_latency,
        "target_ms": round(target, 5),
        "predicted_ms": round(cost.table.predict(searched_spec(state.supernet)), 5),
        "dense_predicted_ms": round(cost.dense, 5),
        "table_digest": cost.table.digest,
        "backend": key["backend"],
        "batch": key["batch"],
        "precision": key["precision"],
        "threads": key["threads"],
    }


def _run_epochs(state: SearchState, loader: Any, state_path: Path, inputs_hash: str, device: torch.device) -> None:
    cfg, net = state.config, state.supernet
    stop = cfg.epochs if cfg.stop_after_epochs is None else min(cfg.epochs, state.epoch + cfg.stop_after_epochs)
    n = state.steps_per_epoch
    if state.finalize_step == 0 and not net.all_final and not state.trials:
        if state.begin_trials():
            log.info("training %d measured candidates side by side", len(state.trials))
        else:
            log.info("chose %s jointly before the first step", ", ".join(state.finalize_open(-1, 0.0)))
    with make_progress() as progress:
        task = progress.add_task("search", total=cfg.epochs * n, completed=state.epoch * n, info="")
        while state.epoch < stop:
            epoch = state.epoch
            set_epoch(loader, epoch)
            state.start_epoch(epoch)
            net.train()
            terms: dict[str, float] = {}
            for i, (x, y) in enumerate(loader):
                t, step = epoch + i / n, epoch * n + i
                if state.trials:
                    terms = state.trial_step(x.to(device), y.to(device), step)
                    progress.advance(task)
                    continue
                terms = state.step(x.to(device), y.to(device), step, t)
                if (step + 1) % cfg.prune_every == 0:
                    for change in state.prune(step, t):
                        log.info("step %d: %s %s -> %s", step + 1, change["module"], change["before"], change["after"])
                if step + 1 == state.finalize_step:
                    opened = state.finalize_open(step, t)
                    if opened:
                        log.info("step %d: finalised %s jointly, closest to the target", step + 1, ", ".join(opened))
                if i % cfg.log_every == 0 or i + 1 == n:
                    progress.update(task, info=_status(state, terms))
                progress.advance(task)
            state.epoch += 1
            state.history.append({"epoch": epoch, **{k: round(v, 5) for k, v in terms.items()}})
            if is_main():
                state.save(state_path, inputs_hash)
            barrier()


def _prepare(
    run_dir: RunDir, config: SearchConfig, dense_checkpoint: Path | str | None, model_name: str | None, data: DataConfig
) -> tuple[SearchState, Any, Any, str, torch.device, DataConfig]:
    cfg_data = data
    if cfg_data.train_size is None and config.train_size is not None:
        cfg_data = cfg_data.replace(train_size=config.train_size)
    model, source = load_dense_model(run_dir, dense_checkpoint, model_name, cfg_data)
    spec = model.spec
    dense_macs = count_macs(spec).total
    target = None if config.target_flops is None else resolve_flops_target(config.target_flops, spec, config.space())
    latency = resolve_latency(config, spec)
    splits = build_splits(cfg_data, spec, train_augment=config.augment)
    device = init_distributed()  # after the inputs are checked: a bad one fails before any setup
    if device.type == "cpu":
        set_cpu_threads()
    torch.manual_seed(config.seed)
    train, held = splits.train, None
    if config.choose_by == "loss":  # before the search trains the dense weights in place
        train, held = hold_out(cfg_data, spec, splits.train, model, config)
    teacher = copy.deepcopy(model).eval().requires_grad_(False).to(device) if config.distill else None
    supernet = build_supernet(model, config.space())
    if config.score_init == "magnitude":
        init_scores_from_weights(supernet)
    supernet = supernet.to(device)
    supernet.refresh()
    decoder = supernet.make_decoder().to(device)
    loader = build_loader(train, config.batch_size, train=True, workers=config.workers, seed=config.seed)
    val_loader = build_loader(splits.val, 256, train=False, workers=config.workers)
    state = SearchState(supernet, decoder, config, target, dense_macs, len(loader), teacher=teacher, latency=latency,
                        held=held)  # fmt: skip
    state.broadcast_start()
    inputs_hash = sha256_json(
        {
            "config": config.result_dict(),
            "data": cfg_data.to_dict(),
            "dense": _fingerprint(source),
            "arch": spec.to_dict(),
            "latency_table": None if latency is None else latency[0].table.to_dict(),
        }
    )
    return state, loader, val_loader, inputs_hash, device, cfg_data


def run_search(
    run_dir: RunDir,
    config: SearchConfig,
    *,
    dense_checkpoint: Path | str | None = None,
    model_name: str | None = None,
    data: DataConfig | str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Search a subnet of the dense model under a FLOPs target; write the run's search folder; return the summary.

    Args:
        run_dir: the run directory (its search folder is created).
        config: search settings (target, epochs, ...).
        dense_checkpoint: a model folder or weights file (default: ``RunDir.dense_dir``).
        model_name: registry name, needed when ``dense_checkpoint`` is a bare weights file; for a folder it must
            name the model the folder holds.
        data: ``fmnist``, an ImageFolder path or a ``DataConfig`` (default: the run's, ``data.run_data``); the
            first stage of a run records it.
        resume: continue from the search's resume state (``RunDir.state_file("search")``) when it exists.
    """
    started = time.perf_counter()
    chosen = run_data(run_dir, data)
    state, loader, val_loader, inputs_hash, device, cfg_data = _prepare(
        run_dir, config, dense_checkpoint, model_name, chosen
    )
    run_dir.stage_dir("search", create=True)
    state_path = run_dir.state_file("search")
    if resume and state_path.is_file():
        state.load(state_path, inputs_hash)
        log.info("resumed the search after epoch %d", state.epoch)
    _run_epochs(state, loader, state_path, inputs_hash, device)
    if state.epoch < config.epochs:
        return {"stopped_after_epoch": state.epoch, "epochs": config.epochs}
    net = state.supernet
    top1_soft = evaluate(net, val_loader, device)["top1"]
    joint = [name for r in state.prune_log if r.get("joint") for name in r["became_final"]]
    unconverged = joint + state.choose_open(net.lam)
    if unconverged:
        log.info("finalised %d open module(s) jointly, closest to the target: %s", len(unconverged), unconverged)
    metrics = evaluate(net, val_loader, device)
    summary = {
        "converged": not unconverged,
        "unconverged": unconverged,
        "seed": config.seed,
        "epochs": config.epochs,
        "top1": round(metrics["top1"], 3),
        "top1_soft": round(top1_soft, 3),
        "val_loss": round(metrics["loss"], 5),
        "search_seconds": round(time.perf_counter() - started, 2),
        "modules": [describe(m) for m in net.masks()],
        "config": config.to_dict(),
        "data": cfg_data.to_dict(),
        "history": state.history,
        "prune_log": state.prune_log,
        "selection": state.selection,
    }
    summary["weights_sha256"] = _digest(net)
    doc = arch_document(net, state.target_macs, {**summary, "latency": _latency_summary(state)})
    if is_main():
        write_result(net, run_dir, doc)
        record_run_data(run_dir, chosen)
        keys = ("dense_flops", "target_flops", "flops", "params", "top1", "top1_soft", "converged", "search_seconds")
        run_dir.mark_done("search", inputs_hash, **{k: doc[k] for k in keys})
    barrier()
    return {
        k: v for k, v in doc.items() if k not in ("history", "config", "blocks", "embed_idx", "stage_idx", "dense_arch")
    }
