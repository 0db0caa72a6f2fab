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

from ofb_deploy.finetune.config import DistillConfig
from ofb_deploy.finetune.distill import kd_loss
from ofb_deploy.search.cost import Cost
from ofb_deploy.search.finalize import best_combinations, closest_combination
from ofb_deploy.search.masks import BiMask, HeadMask
from ofb_deploy.search.supernet import SupernetBase

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


def choose_by_loss(
    net: SupernetBase,
    cost: Cost,
    target: float,
    held: HeldOut,
    lam: float,
    per_width: int = 4,
) -> tuple[Picks, list[dict[str, Any]]]:
    """The combination of the open modules with the lowest held-out loss among the generators' candidates.

    Returns the picks (alive-candidate index per open module) and one record per evaluated candidate (its
    sources, cost, loss and widths) for the search result. With no candidate in the band the closest
    combination is taken, as before.

    Args:
        net: the supernet.
        cost: what the budget counts (MACs or latency).
        target: the target in the cost's unit.
        held: the held-out images and the dense logits.
        lam: current lambda.
        per_width: candidates per embed width from each ranked generator.
    """
    pool: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}

    def add(found: list[tuple[float, Picks]], source: str) -> None:
        for total, picks in found:
            open_picks = {name: i for name, i in picks.items() if not _mask(net, name).final}
            key = tuple(sorted(open_picks.items()))
            entry = pool.setdefault(key, {"picks": open_picks, "cost": total, "sources": []})
            entry["sources"].append(source)

    add(best_combinations(net, cost, target, None, per_width=per_width), "logp")
    add(best_combinations(net, cost, target, sensitivity(net, held, lam), per_width=per_width), "sensitivity")
    add(uniform_combinations(net, cost, target), "uniform")
    if not pool:
        _, picks = closest_combination(net, cost, target)
        return picks, []
    records = []
    for entry in pool.values():
        with trial(net, entry["picks"], lam):
            loss = held.loss(net)
            widths = _widths(net)
        records.append({"sources": entry["sources"], "cost": entry["cost"], "loss": round(loss, 6), "widths": widths,
                        "picks": entry["picks"]})  # fmt: skip
    records.sort(key=lambda r: r["loss"])
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
