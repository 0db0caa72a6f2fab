"""What a search budget counts: MACs (the one FLOPs counter) or predicted latency (a ``LatencyTable``).

Both are additive over modules once the embed width is fixed: a fixed part (stem and head) per embed width plus
one term per attention and MLP module per candidate. That is all the target-aware rounds and the joint choice
need (``finalize.py``), and it gives the expected cost under the candidate probabilities in closed form:

    E[cost] = sum_e p_e * (fixed(e) + sum_m sum_c p_mc * part_m(e, c))

(the embed choice is independent of the others), a torch expression differentiable in every alpha. For MACs,
which are bilinear in the widths, this equals the MACs at the expected widths (``OfbSupernet.soft_macs``).
Per module, the table of part costs over (embed candidates x module candidates) is cached until either list
changes, so a step costs a few small matrix products.
"""

from __future__ import annotations

from typing import Any

import torch

from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.flops import block_macs, count_macs, macs_from_widths
from ofb_deploy.search.masks import BiMask


class Cost:
    """Base: ``fixed(embed)``, ``part(kind, embed, candidate)``, ``dense``; the expected cost of a supernet."""

    name = ""
    unit = ""

    def __init__(self, spec: ArchSpec) -> None:
        self.spec = spec
        self._cache: dict[Any, torch.Tensor] = {}

    def fixed(self, embed: int) -> float:
        raise NotImplementedError

    def part(self, kind: str, embed: int, candidate: Any) -> float:
        """Cost of one ``attn`` (candidate ``(heads, head_dim)``) or ``mlp`` (candidate width) module."""
        raise NotImplementedError

    @property
    def dense(self) -> float:
        """Cost of the dense model."""
        raise NotImplementedError

    def of_spec(self, spec: ArchSpec) -> float:
        """Cost of a whole model of ``spec`` (widths of the dense model's search space)."""
        total = self.fixed(spec.embed_dim)
        for h, d, m in zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True):
            total += self.part("attn", spec.embed_dim, (h, d)) + self.part("mlp", spec.embed_dim, m)
        return total

    def _table(self, embeds: tuple[int, ...], mask: BiMask) -> torch.Tensor:
        key = (embeds, mask.name, tuple(mask.candidates))
        if key not in self._cache:
            rows = [[self.part(mask.kind, e, c) for c in mask.candidates] for e in embeds]
            self._cache[key] = torch.tensor(rows, dtype=torch.float32)
        return self._cache[key]

    def expected(self, net: Any) -> torch.Tensor:
        """E[cost] under the supernet's candidate probabilities (differentiable in every open alpha)."""
        embeds = tuple(int(c) for c in net.embed_mask.candidates)
        p_e = _probs(net.embed_mask)
        per_embed = torch.tensor([self.fixed(e) for e in embeds], dtype=torch.float32, device=p_e.device)
        for mask in [*net.attn_masks, *net.mlp_masks]:
            per_embed = per_embed + self._table(embeds, mask).to(p_e.device) @ _probs(mask)
        return (p_e * per_embed).sum()


def _probs(mask: BiMask) -> torch.Tensor:
    if mask.final or mask.alpha is None:
        return torch.ones(1, device=mask.score.device)
    return mask.probs()


class MacsCost(Cost):
    """MACs per image from the one FLOPs counter (``models.flops``)."""

    name, unit = "flops", "MACs"

    def fixed(self, embed: int) -> float:
        s = self.spec
        zeros = [0] * s.depth
        return float(macs_from_widths(num_tokens=s.num_tokens, patch_pixels=s.in_chans * s.patch_size**2,
                                      num_classes=s.num_classes, embed=embed, attn_widths=zeros,
                                      mlp_hiddens=zeros))  # fmt: skip

    def part(self, kind: str, embed: int, candidate: Any) -> float:
        width = BiMask.unit_count(candidate)
        n = self.spec.num_tokens
        return float(block_macs(n, embed, width, 0) if kind == "attn" else block_macs(n, embed, 0, width))

    @property
    def dense(self) -> float:
        return float(count_macs(self.spec).total)


class LatencyCost(Cost):
    """Predicted latency (ms) from a ``LatencyTable``: its parts times the table's scale, plus its offsets."""

    name, unit = "latency", "ms"

    def __init__(self, spec: ArchSpec, table: Any) -> None:
        super().__init__(spec)
        self.table = table

    def fixed(self, embed: int) -> float:
        t = self.table
        return t.scale * (t.overhead_ms + t.fixed(embed)) + t.offset

    def part(self, kind: str, embed: int, candidate: Any) -> float:
        t = self.table
        if kind == "attn":
            return t.scale * t.attn(embed, candidate[0], candidate[1])
        return t.scale * t.mlp(embed, candidate)

    @property
    def dense(self) -> float:
        return self.table.predict(self.spec)
