"""The joint choice by measured loss: which combination of the open modules' candidates the search keeps.

OFB (arXiv 2403.15835) takes each open module's arg-max of alpha at the end. Our first port chose jointly, the
most probable combination within 0.5% of the budget (``finalize.py``); a replay of its alpha dynamics with no
images at all returned the real runs' widths, because ranking by total log p made the embed width the
budget's slack (docs/method.md). Here the data decide. Candidate combinations within the budget's band come
from three generators, per embed width (per last-stage width of a Swin):

* ``logp``: the most probable ones under alpha (what the search's own dynamics say);
* ``sensitivity``: the best under a measured additive proxy: every open module is set, alone, to each of its
  candidates (the other modules as the search has them), and the distillation loss on held-out training
  images is measured; a module whose units carry nothing (a zeroed block) costs nothing at any width;
* ``uniform``: every block at one attention candidate and the MLPs as even as the band allows, so the choice
  can never prefer, on its own proxy, a combination that is worse than uniform widths.

Every candidate is then evaluated exactly as the slice will be (each open module narrowed to its pick and
frozen, ``BiMask.choose``) on the held-out images, and the lowest distillation loss against the dense model
wins. The held-out images are training images the search does not train on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ofb_deploy.search.cost import Cost
from ofb_deploy.search.finalize import TOLERANCE, best_combinations, closest_combination, combination_cost
from ofb_deploy.search.masks import BiMask, HeadMask
from ofb_deploy.search.supernet import SupernetBase
from ofb_deploy.train.distill import DistillConfig, kd_loss

Picks = dict[str, int]


@dataclass
class HeldOut:
    """Held-out training images, their labels and the dense model's logits: the loss every choice is judged by.

    Args:
        images: ``(N, C, H, W)`` normalised images (no augmentation).
        labels: ``(N,)`` class indices.
        dense_logits: the dense model's logits on ``images``.
        distill: the distillation loss's weights and temperature (the fine-tune's).
        batch: images per forward pass.
    """

    images: torch.Tensor
    labels: torch.Tensor
    dense_logits: torch.Tensor
    distill: DistillConfig
    batch: int = 256

    @torch.no_grad()
    def loss(self, net: torch.nn.Module) -> float:
        """Mean distillation loss of ``net`` against the dense model (eval mode, no gradient)."""
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        total = 0.0
        for start in range(0, len(self.images), self.batch):
            x = self.images[start : start + self.batch].to(device)
            logits = net(x)
            target = self.dense_logits[start : start + self.batch].to(device)
            y = self.labels[start : start + self.batch].to(device)
            total += float(kd_loss(logits, target, y, self.distill)) * len(x)
        net.train(was_training)
        return total / len(self.images)


def held_out(dataset: Any, dense: torch.nn.Module, distill: DistillConfig, batch: int = 256) -> HeldOut:
    """A ``HeldOut`` from a dataset of ``(image, label)`` and the dense model (run once, before the search).

    Args:
        dataset: the held-out images (without augmentation).
        dense: the dense model.
        distill: distillation weights and temperature.
        batch: images per forward pass.
    """
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    x, y = torch.stack(images), torch.as_tensor(labels)
    device = next(dense.parameters()).device
    was_training = dense.training
    dense.eval()
    with torch.no_grad():
        logits = torch.cat([dense(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])
    dense.train(was_training)
    return HeldOut(x, y, logits, distill, batch)


@contextmanager
def trial(net: SupernetBase, picks: Picks, lam: float) -> Iterator[SupernetBase]:
    """``net`` with the open modules named in ``picks`` narrowed to their pick and frozen, restored on exit.

    The trial runs the very code of the real choice (``BiMask.choose``), so its forward is the model the choice
    would leave; the alpha parameters are restored as the same objects, so optimizers keep their state.
    """
    saved = [
        (m, m.alive.clone(), m.scale.clone(), list(m.candidates), m.alpha)
        for m in net.masks()
        if not m.final and m.name in picks
    ]
    try:
        for mask, *_ in saved:
            mask.choose(picks[mask.name], lam)
        yield net
    finally:
        with torch.no_grad():
            for mask, alive, scale, candidates, alpha in saved:
                mask.alive.copy_(alive)
                mask.scale.copy_(scale)
                mask.candidates, mask.alpha, mask.final = candidates, alpha, False
                mask.refresh()


def sensitivity(net: SupernetBase, held: HeldOut, lam: float) -> dict[str, list[float]]:
    """Per open module, minus the held-out loss with that module alone set to each of its candidates.

    The other modules stay as the search has them. Higher is better; the scores add up across modules in the
    joint programme (``finalize.best_combinations``), an approximation the exact evaluation then checks.
    """
    scores: dict[str, list[float]] = {}
    for mask in net.masks():
        if mask.final:
            continue
        row = []
        for index in range(len(mask.candidates)):
            with trial(net, {mask.name: index}, lam):
                row.append(-held.loss(net))
        scores[mask.name] = row
    return scores


def _evenness(mask: BiMask) -> list[float]:
    """A concave score of a module's width: summed over modules it is highest when the widths are even."""
    dense = BiMask.unit_count(mask.candidates[-1]) or 1
    return [-((BiMask.unit_count(c) / dense) ** 2) for c in mask.candidates]


def uniform_combinations(net: SupernetBase, cost: Cost, target: float) -> list[tuple[float, Picks]]:
    """Near-uniform combinations within the band: per first-stage width and per attention candidate open in every
    block, every block takes that candidate and the MLP widths are as even as the band allows."""
    first = net.stage_masks[0]
    attn = [m for m in net.attn_masks if not m.final]
    shared = set(attn[0].candidates).intersection(*(m.candidates for m in attn[1:])) if attn else {None}
    widths = range(len(first.candidates)) if not first.final else [None]
    scores = {m.name: _evenness(m) for m in net.masks() if not m.final and not isinstance(m, HeadMask)}
    out = []
    for width in widths:
        for cand in sorted(shared, key=lambda c: (0, 0) if c is None else c):
            keep: dict[str, list[bool]] = {}
            if width is not None:
                keep[first.name] = [i == width for i in range(len(first.candidates))]
            for mask in attn:
                keep[mask.name] = [c == cand for c in mask.candidates]
            out += best_combinations(net, cost, target, scores, keep, per_width=1)
    return out


class _Pool:
    """Every combination evaluated so far: its sources, exact cost, held-out loss and widths."""

    def __init__(self, net: SupernetBase, cost: Cost, held: HeldOut, lam: float) -> None:
        self.net, self.cost, self.held, self.lam = net, cost, held, lam
        self.entries: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}

    def add(self, picks: Picks, source: str) -> dict[str, Any]:
        open_picks = {m.name: picks[m.name] for m in self.net.masks() if not m.final}
        key = tuple(sorted(open_picks.items()))
        entry = self.entries.get(key)
        if entry is None:
            with trial(self.net, open_picks, self.lam):
                loss, widths = self.held.loss(self.net), _widths(self.net)
            total = combination_cost(self.net, self.cost, picks)
            entry = {"sources": [], "cost": total, "loss": round(loss, 6), "widths": widths, "picks": open_picks}
            self.entries[key] = entry
        if source not in entry["sources"]:
            entry["sources"].append(source)
        return entry

    def best(self) -> dict[str, Any]:
        return min(self.entries.values(), key=lambda e: e["loss"])


def neighbours(net: SupernetBase, cost: Cost, target: float, picks: Picks) -> list[Picks]:
    """Combinations one move from ``picks`` that stay in the band: one open module one candidate up or down (in
    its width order), another open module to any other candidate (which pays for or spends the difference)."""
    band = TOLERANCE * target
    masks = [m for m in net.masks() if not m.final]
    out = []
    for a in masks:
        for step in (-1, 1):
            ia = picks[a.name] + step
            if not 0 <= ia < len(a.candidates):
                continue
            for b in masks:
                if b is a:
                    continue
                for ib in range(len(b.candidates)):
                    if ib == picks[b.name]:
                        continue
                    moved = {**picks, a.name: ia, b.name: ib}
                    if abs(combination_cost(net, cost, moved) - target) <= band:
                        out.append(moved)
    return out


def choose_by_loss(
    net: SupernetBase,
    cost: Cost,
    target: float,
    held: HeldOut,
    lam: float,
    per_width: int = 4,
    local_steps: int = 6,
) -> tuple[Picks, list[dict[str, Any]]]:
    """The combination of the open modules with the lowest held-out loss: the generators' candidates, then a
    local search from the best (``neighbours``, steepest descent, at most ``local_steps`` moves).

    Returns the picks (alive-candidate index per module) and the evaluated candidates, best first (sources,
    cost, loss, widths), for the search result. With no candidate in the band the closest combination is taken.

    Args:
        net: the supernet.
        cost: what the budget counts (MACs or latency).
        target: the target in the cost's unit.
        held: the held-out images and the dense logits.
        lam: lambda frozen into the chosen modules (0: the kept units at their full weight, as sliced).
        per_width: candidates per embed width from each ranked generator.
        local_steps: moves of the local search.
    """
    saved_lam, net.lam = net.lam, lam  # the modules left open are measured at the same lambda
    try:
        return _choose(net, cost, target, held, lam, per_width, local_steps)
    finally:
        net.lam = saved_lam


def _choose(
    net: SupernetBase, cost: Cost, target: float, held: HeldOut, lam: float, per_width: int, local_steps: int
) -> tuple[Picks, list[dict[str, Any]]]:
    pool = _Pool(net, cost, held, lam)
    generators = {
        "logp": best_combinations(net, cost, target, None, per_width=per_width),
        "sensitivity": best_combinations(net, cost, target, sensitivity(net, held, lam), per_width=per_width),
        "uniform": uniform_combinations(net, cost, target),
    }
    for source, found in generators.items():
        for _, picks in found:
            pool.add(picks, source)
    if not pool.entries:
        _, picks = closest_combination(net, cost, target)
        return picks, []
    for step in range(local_steps):
        best = pool.best()
        full = {m.name: 0 for m in net.masks()} | best["picks"]
        for moved in neighbours(net, cost, target, full):
            pool.add(moved, f"local{step}")
        if pool.best() is best:
            break
    records = sorted(pool.entries.values(), key=lambda e: e["loss"])
    return records[0]["picks"], records


def _mask(net: SupernetBase, name: str) -> BiMask:
    return next(m for m in net.masks() if m.name == name)


def _widths(net: SupernetBase) -> dict[str, Any]:
    """The current widths (every mask narrowed to one candidate): stage widths, attention (heads, dim), MLP."""
    return {
        "stages": [m.width for m in net.stage_masks],
        "attn": [[m.heads, m.head_dim] for m in net.attn_masks],
        "mlp": [m.width for m in net.mlp_masks],
    }
