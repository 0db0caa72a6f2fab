"""Trials: the best few measured candidates trained side by side on the same batches, halved until one is left.

The loss right after the cut ranks candidates by how much of the dense function they keep, which is not quite
how well they recover: a candidate that keeps the early blocks whole and starves the last one looks best at
once and trains worse (docs/method.md). So the search trains its ``trials`` most promising candidates (the best
by held-out loss, the best uniform one, and the next best that differ enough from those taken) on the same
batches, and every round keeps the better half by held-out loss, doubling the steps of the next round, until
one is left. The survivor's trained weights become the search's, which trains on for the rest of the pass: the
search still sees each training image once, at the price of a few more steps (``trial_cost``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ofb_deploy.search.config import SearchConfig
from ofb_deploy.search.masks import BiMask
from ofb_deploy.search.pruning import make_alpha_optimizer
from ofb_deploy.search.select import HeldOut, Picks, choose_by_loss
from ofb_deploy.search.supernet import SupernetBase
from ofb_deploy.train.distill import DistillConfig, kd_loss
from ofb_deploy.train.loop import cosine_lr

MIN_DISTANCE = 0.5  # candidates whose widths differ by less (summed relative widths) are not both trialled


@dataclass
class Trial:
    """One candidate in training: its own copy of the supernet (chosen, every mask final) and optimizer."""

    picks: Picks
    net: SupernetBase
    optimizer: torch.optim.Optimizer
    record: dict[str, Any]
    losses: list[float] = field(default_factory=list)


def _distance(net: SupernetBase, a: Picks, b: Picks) -> float:
    """Summed relative width difference of two combinations over the open modules."""
    total = 0.0
    for mask in net.masks():
        if mask.name in a and mask.name in b:
            dense = BiMask.unit_count(mask.candidates[-1])
            units = (BiMask.unit_count(mask.candidates[i]) for i in (a[mask.name], b[mask.name]))
            total += abs(next(units) - next(units)) / dense
    return total


def pick_trials(net: SupernetBase, records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The candidates to trial: the best by held-out loss, the best uniform one, then the best of the rest that
    differ by at least ``MIN_DISTANCE`` from every one taken (``records`` sorted by loss)."""
    chosen = records[:1]
    uniform = [r for r in records if "uniform" in r["sources"]]
    if uniform and uniform[0] is not records[0] and count > 1:
        chosen.append(uniform[0])
    for record in records:
        if len(chosen) >= count:
            break
        if all(_distance(net, record["picks"], c["picks"]) >= MIN_DISTANCE for c in chosen):
            chosen.append(record)
    return chosen


def make_trial(net: SupernetBase, record: dict[str, Any], lam: float, lr: float, weight_decay: float) -> Trial:
    """A copy of ``net`` with the record's picks chosen (``BiMask.choose``), and its AdamW."""
    copy_net = copy.deepcopy(net)
    for mask in copy_net.masks():
        if not mask.final:
            mask.choose(record["picks"][mask.name], lam)
    decay = [p for p in copy_net.model.parameters() if p.ndim >= 2]
    ids = {id(p) for p in decay}
    rest = [p for p in copy_net.model.parameters() if id(p) not in ids]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return Trial(record["picks"], copy_net, torch.optim.AdamW(groups, lr=lr, foreach=True), record)


def rounds(count: int, first_steps: int) -> list[int]:
    """Steps of each halving round: ``first_steps``, then doubled each round, until one candidate is left."""
    steps, out = first_steps, []
    while count > 1:
        out.append(steps)
        count = math.ceil(count / 2)
        steps *= 2
    return out


def trial_cost(count: int, first_steps: int) -> tuple[int, int]:
    """(batches the rounds take, training steps they cost across candidates)."""
    batches, steps, alive = 0, 0, count
    for n in rounds(count, first_steps):
        batches += n
        steps += n * alive
        alive = math.ceil(alive / 2)
    return batches, steps


def halve(trials: list[Trial], held: HeldOut) -> list[Trial]:
    """Measure every trial on the held-out images and keep the better half (rounded up)."""
    for trial in trials:
        trial.losses.append(round(held.loss(trial.net), 6))
    ranked = sorted(trials, key=lambda t: t.losses[-1])
    return ranked[: math.ceil(len(trials) / 2)]


class TrialRounds:
    """The trial rounds of the search loop (a base of ``loop.SearchState``, which holds these attributes)."""

    config: SearchConfig
    supernet: SupernetBase
    held: HeldOut | None
    teacher: torch.nn.Module | None
    steps_per_epoch: int
    opt_w: torch.optim.Optimizer
    opt_a: torch.optim.Optimizer | None
    prune_log: list[dict[str, Any]]
    selection: list[dict[str, Any]]
    trials: list[Trial]
    round_ends: list[int]
    primary: Any  # (Cost, target): a property of SearchState
    alpha_lr: Callable[[int], float]  # SearchState's alpha schedule
    _average_grads: Callable[[list[torch.optim.Optimizer]], None]  # SearchState's all-reduce of gradients

    def begin_trials(self) -> bool:
        """Before the first step (``finalize_at: 0``): measure the candidates and start training the ``trials`` best
        side by side (``trials.py``); ``False`` when there is nothing to trial (then choose at once)."""
        cfg, net = self.config, self.supernet
        if cfg.trials < 2 or cfg.choose_by != "loss" or self.held is None or net.all_final:
            return False
        saved, net.lam = net.lam, 0.0
        try:
            _, self.selection = choose_by_loss(net, *self.primary, self.held, 0.0, cfg.select_per_width,
                                               cfg.select_moves)  # fmt: skip
        finally:
            net.lam = saved
        picked = pick_trials(net, self.selection, cfg.trials)
        if len(picked) < 2:
            return False
        # the rounds take at most 40% of the first epoch's batches: they end before its resume checkpoint, which
        # therefore holds the adopted subnet (a resumed search replays the uninterrupted one)
        plan = rounds(len(picked), cfg.trial_steps)
        scale = min(1.0, 0.4 * self.steps_per_epoch / sum(plan))
        ends, step = [], 0
        for n in plan:
            step += max(1, int(n * scale))
            ends.append(step)
        self.round_ends = ends
        self.trials = [make_trial(net, record, 0.0, cfg.lr, cfg.weight_decay) for record in picked]
        for trial in self.trials:
            trial.record["trialled"] = True
        return True

    def trial_step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> dict[str, float]:
        """One step of every trial on the same batch; halve them at a round's end, adopt the last one."""
        cfg = self.config
        lr = cosine_lr(step, cfg.epochs * self.steps_per_epoch, 0, cfg.lr, min(cfg.min_lr, cfg.lr))
        target = None
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(x)
        losses = []
        for trial in self.trials:
            for group in trial.optimizer.param_groups:
                group["lr"] = lr
            logits = trial.net(x)
            if target is not None:
                loss = kd_loss(logits, target, y, DistillConfig(label_smoothing=cfg.label_smoothing))
            else:
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            trial.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._average_grads([trial.optimizer])  # under torchrun every rank keeps identical trials
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(trial.net.model.parameters(), cfg.grad_clip)
            trial.optimizer.step()
            losses.append(float(loss.detach()))
        if step + 1 in self.round_ends:
            self.trials = halve(self.trials, self.held)
            for trial in self.trials:
                trial.record["trial_losses"] = trial.losses
            if len(self.trials) == 1:
                self.adopt(self.trials[0], step)
        with torch.no_grad():  # a log value: no graph
            soft_macs = float(self.supernet.soft_macs())
        return {"ce": min(losses), "soft_macs": soft_macs}

    def adopt(self, trial: Trial, step: int) -> None:
        """Make the surviving trial the search's subnet: its picks, weights and optimizer moments."""
        net = self.supernet
        opened = [m.name for m in net.masks() if not m.final]
        for mask in net.masks():
            if not mask.final:
                mask.choose(trial.picks[mask.name], 0.0)
        net.load_state_dict(trial.net.state_dict())
        net.refresh()
        moments = {name: trial.optimizer.state.get(p) for name, p in trial.net.model.named_parameters()}
        for name, param in net.model.named_parameters():
            if moments.get(name):
                self.opt_w.state[param] = {k: v.clone() for k, v in moments[name].items()}
        self.opt_a = make_alpha_optimizer(net, self.alpha_lr(step), self.opt_a)
        for record in self.selection:
            record["chosen"] = record is trial.record
        self.trials = []
        self.prune_log.append({"step": step + 1, "epoch": round((step + 1) / self.steps_per_epoch, 4), "joint": True,
                               "trials": True, "changes": [], "became_final": opened,
                               "alive": {m.name: len(m.candidates) for m in net.masks()}})  # fmt: skip
