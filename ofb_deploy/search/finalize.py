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

MACs are additive over modules once the stage widths are fixed (``models.flops``), and a stage width couples only
its own blocks, the patch mergings on either side of the stage and the stem or the head. So the choice is one
exact dynamic programme on a grid of ``dense / GRID`` MACs, run with numpy stage by stage: per alive width of
the stage, a knapsack over the stage's attention and MLP modules at that width; between two stages, each width of
the next stage takes the best previous width for every MAC bucket, with the merging between them added. A ViT
is the one-stage case (one knapsack per embed survivor). Bucket totals carry rounding, so the rule is applied to
exact MACs: the end states near the band are backtracked and re-costed with ``models.flops`` before one is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ofb_deploy.models.flops import block_cost, head_macs, model_macs, stem_macs, transition_macs
from ofb_deploy.search.masks import BiMask
from ofb_deploy.search.supernet import SupernetBase

TOLERANCE = 0.005  # combinations within 0.5% of the target count as meeting it; among them p decides
GRID = 20000  # MAC buckets over the dense model (0.005% each)
CHECK_GRID = 2000  # a coarser grid for the per-round reachability check (0.05% each)
GUARD_GAP = 0.01  # a round keeps some combination of its survivors within 1% of the target
Keep = dict[str, list[bool]] | None


@dataclass(frozen=True)
class Choice:
    """One module's options at given stage widths: MACs, log p and alive-candidate index of each."""

    macs: tuple[float, ...]
    logp: tuple[float, ...]
    index: tuple[int, ...]


def _logp(mask: BiMask) -> list[float]:
    if mask.final or mask.alpha is None:
        return [0.0] * len(mask.candidates)
    return torch.log_softmax(mask.alpha.detach().float(), 0).tolist()


def _options(mask: BiMask, keep: Keep) -> list[tuple[int, float, int]]:
    """(unit count, log p, alive-candidate index) of the (kept) candidates of ``mask``."""
    flags = keep.get(mask.name) if keep else None
    pairs = zip(mask.candidates, _logp(mask), strict=True)
    return [(BiMask.unit_count(c), lp, i) for i, (c, lp) in enumerate(pairs) if flags is None or flags[i]]


def _block_modules(net: SupernetBase, stage: int) -> list[tuple[BiMask, int, str]]:
    """(mask, block, kind) of the attention then MLP modules of ``stage``'s blocks."""
    blocks = net.spec.stage_blocks(stage)
    return [(net.attn_masks[i], i, "attn") for i in blocks] + [(net.mlp_masks[i], i, "mlp") for i in blocks]


def _module_choice(net: SupernetBase, mask: BiMask, block: int, kind: str, width: int, keep: Keep) -> Choice:
    macs, logp, index = [], [], []
    for units, lp, i in _options(mask, keep):
        attn, mlp = (units, 0) if kind == "attn" else (0, units)
        macs.append(float(block_cost(net.spec, block, width, attn, mlp)))
        logp.append(lp)
        index.append(i)
    return Choice(tuple(macs), tuple(logp), tuple(index))


def block_choices(net: SupernetBase, embed: int | Sequence[int], keep: Keep = None) -> list[Choice]:
    """Per attention then MLP module of every block, the MACs and log p of each (kept) alive candidate.

    Args:
        net: the supernet.
        embed: the residual width per stage the block costs are computed at (one int: every stage).
        keep: optional per-module flags restricting the candidates (a proposed round).
    """
    spec = net.spec
    widths = [embed] * spec.num_stages if isinstance(embed, int) else list(embed)
    kinds = [("attn", net.attn_masks), ("mlp", net.mlp_masks)]
    return [
        _module_choice(net, mask, i, kind, widths[spec.block_stage[i]], keep)
        for kind, masks in kinds
        for i, mask in enumerate(masks)
    ]


def _shift(values: np.ndarray, buckets: int) -> np.ndarray:
    """``values`` moved up by ``buckets`` MAC buckets (what falls off the top is dropped)."""
    out = np.full_like(values, -np.inf)
    if buckets < len(values):
        out[buckets:] = values[: len(values) - buckets]
    return out


def _add_module(best: np.ndarray, sizes: np.ndarray, logp: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One knapsack step: every candidate of a module added to ``best``; (new best, arg-max candidate)."""
    nxt = np.full_like(best, -np.inf)
    arg = np.zeros(len(best), dtype=np.int16)
    for k, (size, lp) in enumerate(zip(sizes.tolist(), logp, strict=True)):
        cand = _shift(best, size) + lp
        better = cand > nxt
        nxt[better], arg[better] = cand[better], k
    return nxt, arg


class _Programme:
    """The stage-by-stage dynamic programme of the module docstring, with what backtracking needs."""

    def __init__(self, net: SupernetBase, quantum: float, keep: Keep) -> None:
        self.net, self.spec, self.quantum = net, net.spec, quantum
        self.stages = [_options(m, keep) for m in net.stage_masks]
        self.modules = [_block_modules(net, s) for s in range(self.spec.num_stages)]
        # choices[s][k]: the stage's module choices at its k-th width
        self.choices = [
            [[_module_choice(net, m, i, kind, w, keep) for m, i, kind in self.modules[s]] for w, _, _ in opts]
            for s, opts in enumerate(self.stages)
        ]
        self.top = self._top()
        self.links: list[list[np.ndarray]] = []  # per stage > 0 and width: best previous width per bucket
        self.args: list[list[list[np.ndarray]]] = []  # per stage, width and module: arg-max candidate per bucket

    def bucket(self, macs: float) -> int:
        return int(round(macs / self.quantum))

    def sizes(self, choice: Choice) -> np.ndarray:
        return np.array([self.bucket(m) for m in choice.macs], dtype=np.int64)

    def _top(self) -> int:
        widest = [max(w for w, _, _ in opts) for opts in self.stages]
        fixed = [stem_macs(self.spec, widest[0]), head_macs(self.spec, widest[-1])]
        fixed += [transition_macs(self.spec, s, widest[s - 1], widest[s]) for s in range(1, len(widest))]
        parts = [self.bucket(m) for m in fixed]
        for per_width in self.choices:
            parts += [max(int(self.sizes(c).max()) for c in column) for column in zip(*per_width, strict=True)]
        return sum(parts) + 1

    def run(self) -> list[np.ndarray]:
        """Best total log p per MAC bucket for each width of the last stage (head included)."""
        spec, current = self.spec, []
        for width, lp, _ in self.stages[0]:
            start = np.full(self.top, -np.inf)
            start[self.bucket(stem_macs(spec, width))] = lp
            current.append(start)
        for s in range(len(self.stages)):
            if s:
                current = self._link(s, current)
            stage_args = []
            for k, values in enumerate(current):
                module_args = []
                for choice in self.choices[s][k]:
                    values, arg = _add_module(values, self.sizes(choice), choice.logp)
                    module_args.append(arg)
                current[k] = values
                stage_args.append(module_args)
            self.args.append(stage_args)
        last = self.stages[-1]
        return [_shift(v, self.bucket(head_macs(spec, w))) for v, (w, _, _) in zip(current, last, strict=True)]

    def _link(self, stage: int, previous: list[np.ndarray]) -> list[np.ndarray]:
        out, links = [], []
        for width, lp, _ in self.stages[stage]:
            best = np.full(self.top, -np.inf)
            arg = np.zeros(self.top, dtype=np.int16)
            for k, (prev_width, _, _) in enumerate(self.stages[stage - 1]):
                cand = _shift(previous[k], self.bucket(transition_macs(self.spec, stage, prev_width, width)))
                better = cand > best
                best[better], arg[better] = cand[better], k
            out.append(best + lp)
            links.append(arg)
        self.links.append(links)
        return out

    def backtrack(self, k: int, bucket: int) -> tuple[list[int], list[list[int]]]:
        """(chosen width index per stage, chosen candidate index per stage module) ending at (k, bucket)."""
        spec, stages = self.spec, self.stages
        bucket -= self.bucket(head_macs(spec, stages[-1][k][0]))
        widths: list[int] = [0] * len(stages)
        picks: list[list[int]] = [[] for _ in stages]
        for s in reversed(range(len(stages))):
            widths[s] = k
            for choice, arg in zip(reversed(self.choices[s][k]), reversed(self.args[s][k]), strict=True):
                j = int(arg[bucket])
                picks[s].append(j)
                bucket -= self.bucket(choice.macs[j])
            picks[s].reverse()
            if s:
                prev = int(self.links[s - 1][k][bucket])
                bucket -= self.bucket(transition_macs(spec, s, stages[s - 1][prev][0], stages[s][k][0]))
                k = prev
        return widths, picks

    def combination(self, k: int, bucket: int) -> tuple[float, dict[str, int]]:
        """The combination ending at (last-stage width ``k``, ``bucket``): (exact MACs, index per module name)."""
        width_picks, module_picks = self.backtrack(k, bucket)
        out: dict[str, int] = {}
        units: dict[str, int] = {}
        for s, mask in enumerate(self.net.stage_masks):
            units[mask.name], _, out[mask.name] = self.stages[s][width_picks[s]]
            choices = self.choices[s][width_picks[s]]
            for (module, _, _), choice, j in zip(self.modules[s], choices, module_picks[s], strict=True):
                out[module.name] = choice.index[j]
                units[module.name] = BiMask.unit_count(module.candidates[choice.index[j]])
        net = self.net
        macs = model_macs(
            self.spec,
            stage_widths=[units[m.name] for m in net.stage_masks],
            attn_widths=[units[m.name] for m in net.attn_masks],
            mlp_hiddens=[units[m.name] for m in net.mlp_masks],
        )
        return float(macs), out

    def choose(self, ends: list[np.ndarray], target: float) -> tuple[float, dict[str, int]]:
        """The combination by the rule of the module docstring, judged on exact MACs.

        Bucket totals are off by at most half a bucket per rounded term, so every state whose bucket total lies
        within that slack of the band is a candidate: the most probable one whose exact MACs are in the band
        wins; if none is, the one closest to the target (searched in order of bucket distance, which bounds
        the exact distance from below).
        """
        totals = np.arange(self.top) * self.quantum
        slack = (len(self.stages) + 1 + sum(len(m) for m in self.modules)) * self.quantum / 2
        band = TOLERANCE * target
        states = [(k, int(b)) for k, v in enumerate(ends) for b in np.nonzero(np.isfinite(v))[0]]
        near = [(k, b) for k, b in states if abs(totals[b] - target) <= band + slack]
        for k, b in sorted(near, key=lambda kb: -ends[kb[0]][kb[1]]):  # stable: ties keep width, bucket order
            macs, picks = self.combination(k, b)
            if abs(macs - target) <= band:
                return macs, picks
        best: tuple[float, dict[str, int]] | None = None
        for k, b in sorted(states, key=lambda kb: abs(totals[kb[1]] - target)):
            if best is not None and abs(totals[b] - target) - slack > abs(best[0] - target):
                break
            macs, picks = self.combination(k, b)
            if best is None or abs(macs - target) < abs(best[0] - target):
                best = (macs, picks)
        assert best is not None
        return best


def guard_round(
    net: SupernetBase,
    keep: dict[str, list[bool]],
    target: float,
    dense_macs: float,
) -> dict[str, list[bool]]:
    """Keep the round from losing the target: re-admit the best pre-round combination if the drops lose it.

    Before the round some combination of the alive candidates comes within ``gap`` of the target (at least
    ``GUARD_GAP``); if no combination of the proposed survivors is as close, every candidate of that pre-round
    combination stays. So the reachable gap never grows, and the end-of-search choice always finds one.

    Args:
        net: the supernet (candidates before the round).
        keep: proposed survivor flags per module name (a modified copy is returned).
        target: the MACs target.
        dense_macs: the dense model's MACs.
    """
    before, picks = closest_combination(net, target, dense_macs, None, grid=CHECK_GRID)
    after, _ = closest_combination(net, target, dense_macs, keep, grid=CHECK_GRID)
    limit = max(GUARD_GAP, abs(before - target) / target)
    if abs(after - target) / target <= limit:
        return keep
    out = {name: list(flags) for name, flags in keep.items()}
    for name, index in picks.items():
        out[name][index] = True
    return out


def closest_combination(
    net: SupernetBase,
    target: float,
    dense_macs: float,
    keep: Keep = None,
    grid: int = GRID,
) -> tuple[float, dict[str, int]]:
    """The (kept) alive candidates whose combination best meets ``target``: (MACs, index per module name).

    Args:
        net: the supernet.
        target: the MACs target.
        dense_macs: the dense model's MACs (sets the grid).
        keep: optional per-module flags restricting the candidates (a proposed round).
        grid: MAC buckets over the dense model.
    """
    programme = _Programme(net, dense_macs / grid, keep)
    return programme.choose(programme.run(), target)


def finalize_closest(net: SupernetBase, target: float, dense_macs: float, lam: float) -> list[str]:
    """Finalise every open module at the jointly chosen candidate; return the names of those that were open.

    Args:
        net: the supernet.
        target: the MACs target.
        dense_macs: the dense model's MACs.
        lam: current lambda (frozen into the scales).
    """
    _, picks = closest_combination(net, target, dense_macs)
    opened = [m.name for m in net.masks() if not m.final]
    for mask in net.masks():
        if not mask.final:
            mask.choose(picks[mask.name], lam)
    return opened
