"""What a search budget counts: MACs (the one FLOPs counter) or predicted latency (a ``LatencyTable``).

Both are additive over modules once the residual width of every stage is fixed (a ViT has one stage, its embed
width): a fixed part per stage, set by that stage's width and the previous stage's (the stem on stage 0, a Swin
patch merging on later stages, the head on the last), plus one term per attention and MLP module per candidate at
its stage's width. That is all the target-aware rounds and the joint choice need (``finalize.py``), and it gives
the expected cost under the candidate probabilities in closed form (the stage widths are independent of each
other and of the module choices):

    E[cost] = sum_s [ p_s . (fixed_s + sum_{m in s} T_m p_m)  +  p_{s-1}^T F_s p_s ]

with ``fixed_s``/``F_s`` the fixed part of stage s per width (per pair of widths after stage 0) and ``T_m`` the
module's cost table over (stage widths x module candidates); a torch expression differentiable in every alpha.
For MACs, which are bilinear in the widths, this equals the MACs at the expected widths
(``SupernetBase.soft_macs``). The tables are cached until a candidate list changes, so a step costs a few small
matrix products.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.flops import block_cost, count_macs, head_macs, stem_macs, transition_macs
from ofb_deploy.profile.table import check_profilable
from ofb_deploy.search.masks import BiMask


class Cost(ABC):
    """Base: ``fixed(stage, width, previous)``, ``part(kind, block, embed, candidate)``, ``dense``, ``expected``."""

    name = ""
    unit = ""

    def __init__(self, spec: ArchSpec) -> None:
        self.spec = spec
        self._cache: dict[Any, torch.Tensor] = {}

    @abstractmethod
    def fixed(self, stage: int, width: int, previous: int | None = None) -> float:
        """Cost outside the blocks that ``stage``'s residual width decides.

        Args:
            stage: the stage (0 for a ViT).
            width: its residual width.
            previous: the previous stage's width (``None`` on stage 0): a Swin patch merging costs both.
        """

    @abstractmethod
    def part(self, kind: str, block: int, embed: int, candidate: Any) -> float:
        """Cost of block ``block``'s ``attn`` (candidate ``(heads, head_dim)``) or ``mlp`` (a width) module at
        residual width ``embed`` (its stage's)."""

    @property
    @abstractmethod
    def dense(self) -> float:
        """Cost of the dense model."""

    def of_spec(self, spec: ArchSpec) -> float:
        """Cost of a whole model of ``spec`` (widths of the dense model's search space)."""
        widths = spec.stage_widths
        total = sum(self.fixed(s, w, widths[s - 1] if s else None) for s, w in enumerate(widths))
        for i, (h, d, m) in enumerate(zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True)):
            e = widths[spec.block_stage[i]]
            total += self.part("attn", i, e, (h, d)) + self.part("mlp", i, e, m)
        return total

    def _table(self, embeds: tuple[int, ...], block: int, mask: BiMask) -> torch.Tensor:
        key = (embeds, mask.name, tuple(mask.candidates))
        if key not in self._cache:
            rows = [[self.part(mask.kind, block, e, c) for c in mask.candidates] for e in embeds]
            self._cache[key] = torch.tensor(rows, dtype=torch.float32)
        return self._cache[key]

    def _link(self, stage: int, previous: tuple[int, ...], widths: tuple[int, ...]) -> torch.Tensor:
        key = ("link", stage, previous, widths)
        if key not in self._cache:
            rows = [[self.fixed(stage, w, p) for w in widths] for p in previous]
            self._cache[key] = torch.tensor(rows, dtype=torch.float32)
        return self._cache[key]

    def expected(self, net: Any) -> torch.Tensor:
        """E[cost] under the supernet's candidate probabilities (differentiable in every open alpha)."""
        total: torch.Tensor | None = None
        prev: tuple[tuple[int, ...], torch.Tensor] | None = None
        for s, mask in enumerate(net.stage_masks):
            widths = tuple(int(c) for c in mask.candidates)
            p_s = _probs(mask)
            if s == 0:
                per_width = torch.tensor([self.fixed(0, w) for w in widths], dtype=torch.float32, device=p_s.device)
            else:
                per_width = torch.zeros(len(widths), device=p_s.device)
            for block, module in net.stage_modules(s):
                per_width = per_width + self._table(widths, block, module).to(p_s.device) @ _probs(module)
            term = (p_s * per_width).sum()
            if prev is not None:  # the fixed part between two stages depends on both widths
                term = term + prev[1] @ self._link(s, prev[0], widths).to(p_s.device) @ p_s
            total = term if total is None else total + term
            prev = (widths, p_s)
        assert total is not None
        return total


def _probs(mask: BiMask) -> torch.Tensor:
    if mask.final or mask.alpha is None:
        return torch.ones(1, device=mask.score.device)
    return mask.probs()


class MacsCost(Cost):
    """MACs per image from the one FLOPs counter (``models.flops``)."""

    name, unit = "flops", "MACs"

    def fixed(self, stage: int, width: int, previous: int | None = None) -> float:
        s = self.spec
        macs = stem_macs(s, width) if stage == 0 else transition_macs(s, stage, previous, width)
        if stage == s.num_stages - 1:
            macs += head_macs(s, width)
        return float(macs)

    def part(self, kind: str, block: int, embed: int, candidate: Any) -> float:
        width = BiMask.unit_count(candidate)
        attn, mlp = (width, 0) if kind == "attn" else (0, width)
        return float(block_cost(self.spec, block, embed, attn, mlp))

    @property
    def dense(self) -> float:
        return float(count_macs(self.spec).total)


class LatencyCost(Cost):
    """Predicted latency (ms) from a ``LatencyTable``: its parts times the table's scale, plus its offsets.

    A table times a ViT's parts (``profile/``), so a model of another family fails here with one line.
    """

    name, unit = "latency", "ms"

    def __init__(self, spec: ArchSpec, table: Any) -> None:
        check_profilable(spec)
        super().__init__(spec)
        self.table = table

    def fixed(self, stage: int, width: int, previous: int | None = None) -> float:
        t = self.table
        return t.scale * (t.overhead_ms + t.fixed(width)) + t.offset

    def part(self, kind: str, block: int, embed: int, candidate: Any) -> float:
        t = self.table
        if kind == "attn":
            return t.scale * t.attn(embed, candidate[0], candidate[1])
        return t.scale * t.mlp(embed, candidate)

    @property
    def dense(self) -> float:
        return self.table.predict(self.spec)
