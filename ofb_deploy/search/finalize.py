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

The budget (MACs, or predicted latency: ``cost.py``) is additive over modules once the stage widths are fixed,
and a stage width couples only its own blocks and the fixed parts on either side of the stage (the stem or a
patch merging, and the head). So the choice is one exact dynamic programme on a grid of ``dense / GRID``, run
with numpy stage by stage: per alive width of a stage, a knapsack over the stage's attention and MLP modules at
that width; into the next stage, each of its widths takes the best previous width for every cost bucket, with
the fixed part between them added. A ViT is the one-stage case: one knapsack per embed survivor. Bucket totals
carry rounding, so the rule is applied to exact costs: the end states near the band are backtracked and costed
again term by term before one is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ofb_deploy.search.cost import Cost
from ofb_deploy.search.masks import BiMask
from ofb_deploy.search.supernet import SupernetBase

TOLERANCE = 0.005  # combinations within 0.5% of the target count as meeting it; among them p decides
GRID = 20000  # cost buckets over the dense model (0.005% each)
CHECK_GRID = 2000  # a coarser grid for the per-round reachability check (0.05% each)
GUARD_GAP = 0.01  # a round keeps some combination of its survivors within 1% of the target
Keep = dict[str, list[bool]] | None
Scores = dict[str, list[float]] | None  # per module name, one score per alive candidate (default: log p)


@dataclass(frozen=True)
class Choice:
    """One module's options at a given stage width: cost, log p and alive-candidate index of each."""

    cost: tuple[float, ...]
    logp: tuple[float, ...]
    index: tuple[int, ...]


def _logp(mask: BiMask) -> list[float]:
    if mask.final or mask.alpha is None:
        return [0.0] * len(mask.candidates)
    return torch.log_softmax(mask.alpha.detach().float(), 0).tolist()


def _score(mask: BiMask, scores: Scores) -> list[float]:
    return scores[mask.name] if scores is not None and mask.name in scores else _logp(mask)


def _options(mask: BiMask, keep: Keep, scores: Scores = None) -> list[tuple[int, float, int]]:
    """(candidate, score, alive-candidate index) of the (kept) candidates of a stage's embed mask."""
    flags = keep.get(mask.name) if keep else None
    pairs = zip(mask.candidates, _score(mask, scores), strict=True)
    return [(int(c), lp, i) for i, (c, lp) in enumerate(pairs) if flags is None or flags[i]]


def _module_choice(cost: Cost, block: int, mask: BiMask, width: int, keep: Keep, scores: Scores = None) -> Choice:
    flags = keep.get(mask.name) if keep else None
    costs, logp, index = [], [], []
    for i, (cand, lp) in enumerate(zip(mask.candidates, _score(mask, scores), strict=True)):
        if flags is None or flags[i]:
            costs.append(cost.part(mask.kind, block, width, cand))
            logp.append(lp)
            index.append(i)
    return Choice(tuple(costs), tuple(logp), tuple(index))


def _shift(values: np.ndarray, buckets: int) -> np.ndarray:
    """``values`` moved up by ``buckets`` cost buckets (what falls off the top is dropped)."""
    out = np.full_like(values, -np.inf)
    if buckets < len(values):
        out[buckets:] = values[: len(values) - buckets]
    return out


def _add_module(best: np.ndarray, sizes: list[int], logp: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One knapsack step: every candidate of a module added to ``best``; (new best, arg-max candidate)."""
    nxt = np.full_like(best, -np.inf)
    arg = np.zeros(len(best), dtype=np.int16)
    for k, (size, lp) in enumerate(zip(sizes, logp, strict=True)):
        cand = _shift(best, size) + lp
        better = cand > nxt
        nxt[better], arg[better] = cand[better], k
    return nxt, arg


class _Programme:
    """The stage-by-stage dynamic programme of the module docstring, with what backtracking needs.

    Every term is bucketed above its own minimum (a latency table's offset may be negative); the minima add up to
    ``base``, which is exact, so a bucket ``b`` stands for a total of ``base + b * quantum``.
    """

    def __init__(self, net: SupernetBase, cost: Cost, quantum: float, keep: Keep, scores: Scores = None) -> None:
        self.net, self.quantum = net, quantum
        self.stages = [_options(m, keep, scores) for m in net.stage_masks]
        self.modules = [net.stage_modules(s) for s in range(len(self.stages))]
        # fixed[s][j][k]: the fixed part of stage s at its k-th width, entered from the j-th width of stage s-1
        self.fixed = [[[cost.fixed(0, w) for w, _, _ in self.stages[0]]]]
        for s in range(1, len(self.stages)):
            previous = self.stages[s - 1]
            self.fixed.append([[cost.fixed(s, w, p) for w, _, _ in self.stages[s]] for p, _, _ in previous])
        # choices[s][k]: the stage's module choices at its k-th width
        self.choices = [
            [[_module_choice(cost, block, m, w, keep, scores) for block, m in self.modules[s]] for w, _, _ in opts]
            for s, opts in enumerate(self.stages)
        ]
        self.floors = [min(min(row) for row in table) for table in self.fixed]
        self.module_floors = [
            [min(min(c[j].cost) for c in per_width) for j in range(len(self.modules[s]))]
            for s, per_width in enumerate(self.choices)
        ]
        self.base = sum(self.floors) + sum(sum(f) for f in self.module_floors)
        # sizes[s][k][j]: the buckets of each candidate of module j of stage s at the stage's k-th width
        self.sizes = [
            [[[self.bucket(c, f) for c in ch.cost] for ch, f in zip(per, floors, strict=True)] for per in per_width]
            for per_width, floors in zip(self.choices, self.module_floors, strict=True)
        ]
        self.top = self._top()
        self.links: list[list[np.ndarray]] = []  # per stage > 0 and width: best previous width per bucket
        self.args: list[list[list[np.ndarray]]] = []  # per stage, width and module: arg-max candidate per bucket

    def bucket(self, value: float, floor: float) -> int:
        return int(round((value - floor) / self.quantum))

    def _top(self) -> int:
        pairs = zip(self.fixed, self.floors, strict=True)
        parts = [max(self.bucket(v, f) for row in table for v in row) for table, f in pairs]
        for s, per_width in enumerate(self.sizes):
            parts += [max(max(per[j]) for per in per_width) for j in range(len(self.modules[s]))]
        return sum(parts) + 1

    def run(self) -> list[np.ndarray]:
        """Best total log p per cost bucket for each width of the last stage."""
        current = []
        for k, (_, lp, _) in enumerate(self.stages[0]):
            start = np.full(self.top, -np.inf)
            start[self.bucket(self.fixed[0][0][k], self.floors[0])] = lp
            current.append(start)
        for s in range(len(self.stages)):
            if s:
                current = self._link(s, current)
            stage_args = []
            for k, values in enumerate(current):
                module_args = []
                for choice, sizes in zip(self.choices[s][k], self.sizes[s][k], strict=True):
                    values, arg = _add_module(values, sizes, choice.logp)
                    module_args.append(arg)
                current[k] = values
                stage_args.append(module_args)
            self.args.append(stage_args)
        return current

    def _link(self, stage: int, previous: list[np.ndarray]) -> list[np.ndarray]:
        out, links = [], []
        for k, (_, lp, _) in enumerate(self.stages[stage]):
            best = np.full(self.top, -np.inf)
            arg = np.zeros(self.top, dtype=np.int16)
            for j in range(len(self.stages[stage - 1])):
                cand = _shift(previous[j], self.bucket(self.fixed[stage][j][k], self.floors[stage]))
                better = cand > best
                best[better], arg[better] = cand[better], j
            out.append(best + lp)
            links.append(arg)
        self.links.append(links)
        return out

    def backtrack(self, k: int, bucket: int) -> tuple[list[int], list[list[int]]]:
        """(chosen width index per stage, chosen candidate index per stage module) ending at (k, bucket)."""
        widths: list[int] = [0] * len(self.stages)
        picks: list[list[int]] = [[] for _ in self.stages]
        for s in reversed(range(len(self.stages))):
            widths[s] = k
            for sizes, arg in zip(reversed(self.sizes[s][k]), reversed(self.args[s][k]), strict=True):
                c = int(arg[bucket])
                picks[s].append(c)
                bucket -= sizes[c]
            picks[s].reverse()
            if s:
                prev = int(self.links[s - 1][k][bucket])
                bucket -= self.bucket(self.fixed[s][prev][k], self.floors[s])
                k = prev
        return widths, picks

    def combination(self, k: int, bucket: int) -> tuple[float, dict[str, int]]:
        """The combination ending at (last-stage width ``k``, ``bucket``): (exact cost, index per module name)."""
        width_picks, module_picks = self.backtrack(k, bucket)
        out: dict[str, int] = {}
        total = 0.0
        for s, mask in enumerate(self.net.stage_masks):
            out[mask.name] = self.stages[s][width_picks[s]][2]
            total += self.fixed[s][width_picks[s - 1] if s else 0][width_picks[s]]
            choices = self.choices[s][width_picks[s]]
            for (_, module), choice, c in zip(self.modules[s], choices, module_picks[s], strict=True):
                out[module.name] = choice.index[c]
                total += choice.cost[c]
        return total, out

    def choose(self, ends: list[np.ndarray], target: float) -> tuple[float, dict[str, int]]:
        """The combination by the rule of the module docstring, judged on exact costs.

        Bucket totals are off by at most half a bucket per rounded term, so every state whose bucket total lies
        within that slack of the band is a candidate: the most probable one whose exact cost is in the band
        wins; if none is, the one closest to the target (searched in order of bucket distance, which bounds
        the exact distance from below).
        """
        totals = self.base + np.arange(self.top) * self.quantum
        slack = (len(self.stages) + sum(len(m) for m in self.modules)) * self.quantum / 2
        band = TOLERANCE * target
        states = [(k, int(b)) for k, v in enumerate(ends) for b in np.nonzero(np.isfinite(v))[0]]
        near = [(k, b) for k, b in states if abs(totals[b] - target) <= band + slack]
        for k, b in sorted(near, key=lambda kb: -ends[kb[0]][kb[1]]):  # stable: ties keep width, bucket order
            total, picks = self.combination(k, b)
            if abs(total - target) <= band:
                return total, picks
        best: tuple[tuple[float, float], float, dict[str, int]] | None = None
        for k, b in sorted(states, key=lambda kb: abs(totals[kb[1]] - target)):
            if best is not None and abs(totals[b] - target) - slack > best[0][0]:
                break
            total, picks = self.combination(k, b)
            rank = (abs(total - target), -float(ends[k][b]))  # equally close: the more probable one
            if best is None or rank < best[0]:
                best = (rank, total, picks)
        assert best is not None
        return best[1], best[2]

    def best_in_band(self, ends: list[np.ndarray], target: float, per_width: int) -> list[tuple[float, dict[str, int]]]:
        """Up to ``per_width`` combinations per last-stage width whose exact cost is within the band, best first.

        Each cost bucket holds the best-scoring combination of that cost, so the buckets in the band give distinct
        combinations; they are taken in order of score and checked on exact costs (as ``choose``).
        """
        totals = self.base + np.arange(self.top) * self.quantum
        slack = (len(self.stages) + sum(len(m) for m in self.modules)) * self.quantum / 2
        band = TOLERANCE * target
        out = []
        for k, values in enumerate(ends):
            near = [b for b in np.nonzero(np.isfinite(values))[0] if abs(totals[b] - target) <= band + slack]
            found = 0
            for b in sorted(near, key=lambda b: -values[b]):
                total, picks = self.combination(k, int(b))
                if abs(total - target) <= band:
                    out.append((total, picks))
                    found += 1
                    if found == per_width:
                        break
        return out


def best_combinations(
    net: SupernetBase,
    cost: Cost,
    target: float,
    scores: Scores = None,
    keep: Keep = None,
    per_width: int = 1,
) -> list[tuple[float, dict[str, int]]]:
    """The highest-scoring combinations within ``TOLERANCE`` of ``target``, up to ``per_width`` per last-stage width.

    Args:
        net: the supernet.
        cost: what the budget counts (MACs or latency).
        target: the target in the cost's unit.
        scores: per module, one additive score per alive candidate (default: log p).
        keep: optional per-module flags restricting the candidates.
        per_width: combinations kept per width of the last stage (a ViT: per embed width).
    """
    programme = _Programme(net, cost, cost.dense / GRID, keep, scores)
    return programme.best_in_band(programme.run(), target, per_width)


def combination_cost(net: SupernetBase, cost: Cost, picks: dict[str, int]) -> float:
    """The exact cost of one combination (alive-candidate index per module name; a final module has one)."""
    total, previous = 0.0, None
    for stage, mask in enumerate(net.stage_masks):
        width = int(mask.candidates[picks.get(mask.name, 0)])
        total += cost.fixed(stage, width, previous)
        for block, module in net.stage_modules(stage):
            total += cost.part(module.kind, block, width, module.candidates[picks.get(module.name, 0)])
        previous = width
    return total


def guard_round(net: SupernetBase, keep: dict[str, list[bool]], cost: Cost, target: float) -> dict[str, list[bool]]:
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


def closest_combination(
    net: SupernetBase,
    cost: Cost,
    target: float,
    keep: Keep = None,
    grid: int = GRID,
) -> tuple[float, dict[str, int]]:
    """The (kept) alive candidates whose combination best meets ``target``: (cost, index per module name).

    Args:
        net: the supernet (a ViT or a Swin).
        cost: what the budget counts (MACs or latency).
        target: the target in the cost's unit.
        keep: optional per-module flags restricting the candidates (a proposed round).
        grid: cost buckets over the dense model's cost.
    """
    programme = _Programme(net, cost, cost.dense / grid, keep)
    return programme.choose(programme.run(), target)


def finalize_closest(net: SupernetBase, cost: Cost, target: float, lam: float) -> list[str]:
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
