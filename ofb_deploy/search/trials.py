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
from dataclasses import dataclass, field
from typing import Any

import torch

from ofb_deploy.search.masks import BiMask
from ofb_deploy.search.select import HeldOut, Picks
from ofb_deploy.search.supernet import SupernetBase

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
