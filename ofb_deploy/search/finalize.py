"""Target-aware pruning and finalisation: the surviving candidates whose combination lands closest to the target.

OFB (arXiv 2403.15835) finalises a module when one candidate is left, and takes the arg-max of alpha for modules
still open when the search ends. A blind arg-max per module ignores the budget: the modules' expected widths meet
the target only on average. Two rules here keep the target:

* **Guarded rounds.** A pruning round may not lose the target. Before the round some combination of the alive
  candidates lands within ``GUARD_GAP`` of it (or as close as the space allows); if the p <= 0.2/K drops would
  leave no combination that close, the candidates of that combination stay. So a module whose survivors
  still straddle the target stays open instead of going final on the wrong side, and the target can always
  be met at the end.
* **Joint choice at the end.** The open modules get one candidate each, chosen jointly: among combinations
  within ``TOLERANCE`` of the target the one with the highest total log-probability, else the closest one.

The budget (MACs, or predicted latency: ``cost.py``) is additive over modules once the embed width is fixed: for
each embed survivor the choice is a small knapsack, solved exactly on a grid of ``dense / GRID`` with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ofb_deploy.search.cost import Cost
from ofb_deploy.search.masks import BiMask
from ofb_deploy.search.supernet import OfbSupernet

TOLERANCE = 0.005  # combinations within 0.5% of the target count as meeting it; among them p decides
GRID = 20000  # MAC buckets over the dense model (0.005% each)
CHECK_GRID = 2000  # a coarser grid for the per-round reachability check (0.05% each)
GUARD_GAP = 0.01  # a round keeps some combination of its survivors within 1% of the target


@dataclass(frozen=True)
class Choice:
    """One module's options for a given embed width: MACs, log p and alive-candidate index of each."""

    macs: tuple[float, ...]
    logp: tuple[float, ...]
    index: tuple[int, ...]


def _logp(mask: BiMask) -> list[float]:
    if mask.final or mask.alpha is None:
        return [0.0] * len(mask.candidates)
    return torch.log_softmax(mask.alpha.detach().float(), 0).tolist()


def block_choices(net: OfbSupernet, cost: Cost, embed: int, keep: dict[str, list[bool]] | None = None) -> list[Choice]:
    """Per attention/MLP module, the cost and log p of each (kept) alive candidate at embed width ``embed``.

    Args:
        net: the supernet.
        cost: what the budget counts (MACs or latency).
        embed: the embed width the block costs are computed at.
        keep: optional per-module flags restricting the candidates (a proposed round).
    """
    out = []
    for mask in [*net.attn_masks, *net.mlp_masks]:
        flags = keep.get(mask.name) if keep else None
        costs, logp, index = [], [], []
        for i, (cand, lp) in enumerate(zip(mask.candidates, _logp(mask), strict=True)):
            if flags is not None and not flags[i]:
                continue
            costs.append(cost.part(mask.kind, embed, cand))
            logp.append(lp)
            index.append(i)
        out.append(Choice(tuple(costs), tuple(logp), tuple(index)))
    return out


def _embed_options(net: OfbSupernet, keep: dict[str, list[bool]] | None = None) -> list[tuple[int, float, int]]:
    """(embed width, log p, candidate index) of the (kept) embed candidates."""
    mask = net.embed_mask
    flags = keep.get(mask.name) if keep else None
    return [
        (int(c), lp, i)
        for i, (c, lp) in enumerate(zip(mask.candidates, _logp(mask), strict=True))
        if flags is None or flags[i]
    ]


def guard_round(net: OfbSupernet, keep: dict[str, list[bool]], cost: Cost, target: float) -> dict[str, list[bool]]:
    """Keep the round from losing the target: re-admit the best pre-round combination if the drops lose it.

    Before the round some combination of the alive candidates comes within ``gap`` of the target (at least
    ``GUARD_GAP``); if no combination of the proposed survivors is as close, every candidate of that pre-round
    combination stays. So the reachable gap never grows, and the end-of-search choice always finds one.

    Args:
        net: the supernet (candidates before the round).
        keep: proposed survivor flags per module name (a modified copy is returned).
        cost: what the budget counts (MACs or latency).
        target: the target in the cost's unit.
    """
    before, picks = closest_combination(net, cost, target, None, grid=CHECK_GRID)
    after, _ = closest_combination(net, cost, target, keep, grid=CHECK_GRID)
    limit = max(GUARD_GAP, abs(before - target) / target)
    if abs(after - target) / target <= limit:
        return keep
    out = {name: list(flags) for name, flags in keep.items()}
    for name, index in picks.items():
        out[name][index] = True
    return out


def _knapsack(base: float, choices: list[Choice], target: float, quantum: float) -> tuple[float, float, list[int]]:
    """Exact choice on a cost grid: (cost, total log p, index per module), best by the rule of the docstring."""
    sizes = [np.array([round(m / quantum) for m in c.macs], dtype=np.int64) for c in choices]
    top = int(sum(int(s.max()) for s in sizes)) + 1
    best = np.full(top, -np.inf)
    best[0] = 0.0
    back = []
    for c, size in zip(choices, sizes, strict=True):
        nxt = np.full(top, -np.inf)
        arg = np.zeros(top, dtype=np.int32)
        for k, (shift, lp) in enumerate(zip(size.tolist(), c.logp, strict=True)):
            cand = np.full(top, -np.inf)
            cand[shift:] = best[: top - shift] + lp
            better = cand > nxt
            nxt[better], arg[better] = cand[better], k
        best = nxt
        back.append(arg)
    totals = base + np.arange(top) * quantum
    feasible = np.isfinite(best)
    within = feasible & (np.abs(totals - target) <= TOLERANCE * target)
    if within.any():
        bucket = int(np.argmax(np.where(within, best, -np.inf)))
    else:
        bucket = int(np.argmin(np.where(feasible, np.abs(totals - target), np.inf)))
    picks = []
    for arg, size in zip(reversed(back), reversed(sizes), strict=True):
        k = int(arg[bucket])
        picks.append(k)
        bucket -= int(size[k])
    picks.reverse()
    macs = base + sum(c.macs[k] for c, k in zip(choices, picks, strict=True))
    return macs, float(sum(c.logp[k] for c, k in zip(choices, picks, strict=True))), picks


def closest_combination(
    net: OfbSupernet,
    cost: Cost,
    target: float,
    keep: dict[str, list[bool]] | None = None,
    grid: int = GRID,
) -> tuple[float, dict[str, int]]:
    """The (kept) alive candidates whose combination best meets ``target``: (cost, index per module name).

    Args:
        net: the supernet.
        cost: what the budget counts (MACs or latency).
        target: the target in the cost's unit.
        keep: optional per-module flags restricting the candidates (a proposed round).
        grid: cost buckets over the dense model's cost.
    """
    quantum = cost.dense / grid
    best: tuple[tuple[bool, float], float, int, list[int], list[Choice]] | None = None
    for embed, lp_e, idx_e in _embed_options(net, keep):
        choices = block_choices(net, cost, embed, keep)
        macs, logp, picks = _knapsack(cost.fixed(embed), choices, target, quantum)
        within = abs(macs - target) <= TOLERANCE * target
        # rank: within the band first, then (within) higher log p or (outside) smaller distance
        key = (within, (logp + lp_e) if within else -abs(macs - target))
        if best is None or key > best[0]:
            best = (key, macs, idx_e, picks, choices)
    assert best is not None
    _, macs, idx_e, picks, choices = best
    modules = [*net.attn_masks, *net.mlp_masks]
    out = {net.embed_mask.name: idx_e}
    out.update({m.name: c.index[k] for m, c, k in zip(modules, choices, picks, strict=True)})
    return macs, out


def finalize_closest(net: OfbSupernet, cost: Cost, target: float, lam: float) -> list[str]:
    """Finalise every open module at the jointly chosen candidate; return the names of those that were open.

    Args:
        net: the supernet.
        cost: what the budget counts (MACs or latency).
        target: the target in the cost's unit.
        lam: current lambda (frozen into the scales).
    """
    _, picks = closest_combination(net, cost, target)
    opened = [m.name for m in net.masks() if not m.final]
    for mask in net.masks():
        if not mask.final:
            mask.choose(picks[mask.name], lam)
    return opened
