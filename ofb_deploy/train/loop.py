"""The training loop shared by dense training and fine-tuning: AdamW, warm-up + cosine, resume, DDP, eval.

``train_model`` runs ``config.epochs`` epochs over ``splits.train`` and evaluates on ``splits.val``. After each
epoch rank 0 writes a resume state (model, optimizer, scaler and RNG state dicts, ``torch.save``; read back with
``weights_only=True``), atomically, so a killed run restarts from its last finished epoch with ``resume=True``.
The schedule is per step (Loshchilov & Hutter, SGDR, arXiv 1608.03983, with linear warm-up as in DeiT).
Under torchrun the model is wrapped in DDP and the loaders shard the data; only rank 0 writes files.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ofb_deploy.artifacts import train_state
from ofb_deploy.data import DataSplits, build_loader, set_epoch
from ofb_deploy.errors import ArtifactError
from ofb_deploy.models.checkpoint import save_model_dir
from ofb_deploy.train.config import TrainConfig
from ofb_deploy.utils import dist
from ofb_deploy.utils.io import atomic_write_with
from ofb_deploy.utils.progress import make_progress
from ofb_deploy.utils.threads import set_cpu_threads

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, images, labels) -> loss
NO_DECAY_SUFFIXES = ("cls_token", "pos_embed", "relative_position_bias_table")  # no weight decay on these


def cosine_lr(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float) -> float:
    """Learning rate at ``step``: linear warm-up from ``base_lr/warmup`` to ``base_lr``, then cosine to ``min_lr``.

    Args:
        step: 0-based optimizer step.
        total_steps: steps of the whole run.
        warmup_steps: warm-up steps (0: none).
        base_lr: peak learning rate.
        min_lr: final learning rate.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, device: torch.device | None = None) -> dict[str, float]:
    """Top-1 / top-5 accuracy (in %) and mean cross-entropy over a loader (summed over ranks under torchrun).

    Args:
        model: the classifier.
        loader: yields ``(images, labels)``.
        device: where to run (default: the model's device).
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, count
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = model(images).float()
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices.eq(labels[:, None])
        sums += torch.tensor(
            [
                F.cross_entropy(logits, labels, reduction="sum").item(),
                hits[:, 0].sum().item(),
                hits.any(dim=1).sum().item(),
                len(labels),
            ],
            dtype=torch.float64,
        )
    model.train(was_training)
    if dist.world_size() > 1:  # NOTE: nccl reduces device tensors only
        sums = sums.to(device)
        torch.distributed.all_reduce(sums)
        sums = sums.cpu()
    n = max(1.0, float(sums[3]))
    return {"top1": 100.0 * float(sums[1]) / n, "top5": 100.0 * float(sums[2]) / n, "loss": float(sums[0]) / n}


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # DeiT/timm: no decay on biases, norm weights, class token, position embedding and Swin's relative-position
    # bias tables (all 1-D, tokens or position terms)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.endswith(NO_DECAY_SUFFIXES)
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _amp_dtype(device: torch.device, config: TrainConfig) -> torch.dtype | None:
    if device.type != "cuda" or not config.amp:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _save_state(path: Path, state: dict[str, Any]) -> None:
    if dist.is_main():
        atomic_write_with(path, lambda tmp: torch.save(state, tmp))


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean the same: an unreadable file
        raise ArtifactError(f"corrupt resume state {path} ({type(exc).__name__}); delete it or drop --resume") from exc
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch"} <= set(state):
        raise ArtifactError(f"resume state {path} is incomplete; delete it or drop --resume")
    return state


class _Trainer:
    """State of one run: model (and its DDP wrapper), optimizer, scaler, loaders and schedule."""

    def __init__(self, model: nn.Module, splits: DataSplits, config: TrainConfig, loss_fn: LossFn | None) -> None:
        self.device = dist.init_distributed()
        self.config = config
        self.model = model.to(self.device)
        self.net: nn.Module = model
        if dist.world_size() > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.train_loader = build_loader(
            splits.train, config.batch_size, train=True, workers=config.workers, seed=config.seed
        )
        self.val_loader = build_loader(splits.val, config.batch_size * 2, train=False, workers=config.workers)
        self.optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
        self.amp_dtype = _amp_dtype(self.device, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = int(round(config.warmup_epochs * self.steps_per_epoch))
        smoothing = config.label_smoothing
        self.loss_fn = loss_fn or (lambda logits, _x, y: F.cross_entropy(logits, y, label_smoothing=smoothing))
        self.epoch, self.history = 0, []

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "rng": torch.get_rng_state(),
            "config": self.config.to_dict(),
        }

    def load(self, state: dict[str, Any], path: Path) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ArtifactError(f"resume state {path} does not fit this model; delete it or drop --resume") from exc
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if isinstance(state.get("rng"), torch.Tensor):
            torch.set_rng_state(state["rng"])
        self.epoch, self.history = int(state["epoch"]), list(state.get("history", []))
        if state.get("config") != self.config.to_dict():
            log.warning("resuming with a different training config than the saved state's")

    def train_epoch(self, progress: Any, description: str) -> float:
        cfg, net = self.config, self.net
        net.train()
        set_epoch(self.train_loader, self.epoch)
        task = progress.add_task(f"{description} {self.epoch + 1}/{cfg.epochs}", total=self.steps_per_epoch, info="")
        total = torch.zeros((), dtype=torch.float64)
        for i, (images, labels) in enumerate(self.train_loader):
            step = self.epoch * self.steps_per_epoch + i
            lr = cosine_lr(step, self.total_steps, self.warmup_steps, cfg.lr, cfg.min_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=bool(self.amp_dtype)):
                loss = self.loss_fn(net(images), images, labels)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += loss.detach().double().cpu()
            progress.update(task, advance=1, info=f"loss {total.item() / (i + 1):.4f} lr {lr:.2e}")
        return float(dist.all_reduce_mean_((total / max(1, self.steps_per_epoch)).to(self.device)))


def train_model(
    model: nn.Module,
    splits: DataSplits,
    out_dir: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    loss_fn: LossFn | None = None,
    stem: str = "model",
    meta: dict[str, Any] | None = None,
    state_path: Path | None = None,
    description: str = "train",
) -> dict[str, Any]:
    """Train ``model`` and save it as the model folder ``out_dir`` (with ``stem``); return the final metrics.

    Args:
        model: the model to train (moved to this process's device).
        splits: data; ``train`` is trained on, ``val`` evaluated after each epoch.
        out_dir: output folder.
        config: hyper-parameters.
        resume: continue from ``state_path`` when it exists (from its last finished epoch).
        loss_fn: ``(logits, images, labels) -> loss``; default label-smoothed cross-entropy (distillation plugs in).
        stem: file stem of the saved model (``model`` or ``subnet``).
        meta: extra metadata stored in the model's JSON (name, data ...).
        state_path: resume state file (default ``artifacts.train_state(out_dir)``).
        description: label of the progress bars.
    """
    out_dir, started = Path(out_dir), time.time()
    state_path = Path(state_path) if state_path is not None else train_state(out_dir)
    set_cpu_threads(config.threads)
    trainer = _Trainer(model, splits, config, loss_fn)
    if resume and state_path.is_file():
        trainer.load(_load_state(state_path), state_path)
        log.info("resuming %s from epoch %d/%d (%s)", description, trainer.epoch, config.epochs, state_path)
    metrics = _run_epochs(trainer, state_path, description)
    metrics.update(epochs=config.epochs, time_s=round(time.time() - started, 1), world_size=dist.world_size())
    if dist.is_main():
        doc = {"config": config.to_dict(), "metrics": metrics, "history": trainer.history, **(meta or {})}
        save_model_dir(model, out_dir, stem=stem, meta=doc)
    dist.barrier()
    return metrics


def _run_epochs(trainer: _Trainer, state_path: Path, description: str) -> dict[str, Any]:
    cfg = trainer.config
    metrics: dict[str, Any] = dict(trainer.history[-1]) if trainer.history else {}
    with make_progress() as progress:
        while trainer.epoch < cfg.epochs:
            train_loss = trainer.train_epoch(progress, description)
            trainer.epoch += 1
            metrics = {"epoch": trainer.epoch, "train_loss": round(train_loss, 5)}
            if trainer.epoch % cfg.eval_every == 0 or trainer.epoch == cfg.epochs:
                metrics.update({k: round(v, 4) for k, v in evaluate(trainer.model, trainer.val_loader).items()})
            trainer.history.append(metrics)
            log.info("%s epoch %d/%d: %s", description, trainer.epoch, cfg.epochs, metrics)
            _save_state(state_path, trainer.state())
    if "top1" not in metrics:  # resumed a finished run whose last record lacks an evaluation
        metrics.update({k: round(v, 4) for k, v in evaluate(trainer.model, trainer.val_loader).items()})
    return metrics
