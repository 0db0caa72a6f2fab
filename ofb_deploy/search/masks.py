"""The OFB bi-mask: importance scores S, architecture logits alpha and the rank-space staircase V.

OFB (arXiv 2403.15835, sec. 3.2) masks each unit u with

    M_u = lambda(t) * sigmoid(S_u) + (1 - lambda(t)) * V_u,     V_u = v_{rank(u)},
    v_j = sum_k p_k [j < n_k],   p = softmax(alpha over the alive candidates),

so v is a non-increasing staircase: the probability that the j-th most important unit survives. V is
differentiable in alpha; S reaches V only through the ranking. The expected width is sum_u V_u = sum_k p_k n_k.

Every mask keeps its tensors dense-shaped ((D,), (H, d) or (M,)) and an ``alive`` mask. Progressive pruning
removes candidates; when the widest survivor is narrower than the alive set, the lowest-ranked units leave
``alive`` for good (physical narrowing), and the supernet then gathers only alive rows and columns. A mask
with one candidate left is final: its value is frozen into ``scale`` (zero for dropped units).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

SCORE_STD = 0.2  # TruncNormal(0, 0.2) initialisation of the importance scores (OFB sec. 3.2)


def staircase(p: torch.Tensor, sizes: torch.Tensor, n: int) -> torch.Tensor:
    """v_j = sum_k p_k [j < n_k] for j < n (differentiable in ``p``).

    Args:
        p: candidate probabilities, shape (K,).
        sizes: candidate widths, shape (K,).
        n: number of ranks (the alive width).
    """
    j = torch.arange(n, device=p.device)
    return (p[:, None] * (j[None, :] < sizes[:, None]).to(p.dtype)).sum(0)


def staircase2d(p: torch.Tensor, heads: torch.Tensor, dims: torch.Tensor, h: int, d: int) -> torch.Tensor:
    """Joint heads x dims staircase: v[i, j] = sum_k p_k [i < heads_k][j < dims_k], shape (h, d)."""
    i = torch.arange(h, device=p.device)[None, :, None] < heads[:, None, None]
    j = torch.arange(d, device=p.device)[None, None, :] < dims[:, None, None]
    return (p[:, None, None] * (i & j).to(p.dtype)).sum(0)


def ranks_desc(values: torch.Tensor) -> torch.Tensor:
    """Rank of each entry along the last dim, 0 for the largest (ties broken by position)."""
    order = torch.argsort(values.detach(), dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(values.shape[-1], device=values.device).expand_as(order).contiguous())
    return ranks


class BiMask(nn.Module, ABC):
    """Search state of one module: scores, alive units, alive candidates with their logits, final scale.

    Args:
        name: module name as in the output (``embed``, ``blocks.3.attn``, ``blocks.3.mlp``).
        shape: dense unit shape.
        candidates: candidate sizes (ints, or (heads, dim) pairs for attention).
    """

    kind = ""

    def __init__(self, name: str, shape: tuple[int, ...], candidates: list[Any]) -> None:
        super().__init__()
        self.name = name
        self.score = nn.Parameter(torch.empty(shape))
        nn.init.trunc_normal_(self.score, std=SCORE_STD, a=-2 * SCORE_STD, b=2 * SCORE_STD)
        self.register_buffer("alive", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("scale", torch.zeros(shape))
        self.candidates: list[Any] = list(candidates)
        self.final = False
        self.alpha: nn.Parameter | None = nn.Parameter(torch.zeros(len(candidates)))
        # NOTE: OFB's loss reaches alpha through (1 - lambda) * V only, ~0.01 of its size while lambda is near 0.99;
        # with ``straight_through`` the forward is the same but V's gradient is taken at full size (docs/method.md)
        self.straight_through = False
        self.refresh()

    @torch.no_grad()
    def init_scores(self, importance: torch.Tensor) -> None:
        """Scores ordered like ``importance`` (same shape): its z-score times SCORE_STD, clipped like the init.

        The scores keep the authors' scale (sigmoid(S) near 0.5), only their order comes from the weights.
        """
        z = (importance - importance.mean()) / importance.std().clamp_min(1e-12)
        self.score.copy_((z * SCORE_STD).clamp(-2 * SCORE_STD, 2 * SCORE_STD).to(self.score.dtype))

    # -- state ----------------------------------------------------------------------------------------------
    def search_state(self) -> dict[str, Any]:
        """Candidates, alpha and final flag (the parts a state dict cannot hold because their size changes)."""
        return {
            "candidates": [list(c) if isinstance(c, tuple) else c for c in self.candidates],
            "alpha": None if self.alpha is None else self.alpha.detach().clone(),
            "final": self.final,
        }

    def load_search_state(self, state: dict[str, Any]) -> None:
        """Restore ``search_state()``; call before ``load_state_dict`` so alpha has the right size."""
        self.candidates = [tuple(c) if isinstance(c, list) else c for c in state["candidates"]]
        self.final = bool(state["final"])
        alpha = state["alpha"]
        self.alpha = None if alpha is None else nn.Parameter(alpha.clone().to(self.score.device))

    def probs(self) -> torch.Tensor:
        """p = softmax(alpha) over the alive candidates."""
        assert self.alpha is not None
        return torch.softmax(self.alpha, dim=0)

    def widths(self) -> torch.Tensor:
        """Unit count of each alive candidate, float tensor (K,)."""
        sizes = [self.unit_count(c) for c in self.candidates]
        return torch.tensor(sizes, dtype=torch.float32, device=self.score.device)

    def expected_width(self) -> torch.Tensor | float:
        """Expected units kept, sum_u V_u = sum_k p_k n_k (a constant once final)."""
        if self.final or self.alpha is None:
            return float(self.widths()[0])
        return (self.probs() * self.widths()).sum()

    # -- pruning --------------------------------------------------------------------------------------------
    @staticmethod
    def unit_count(candidate: Any) -> int:
        """Units a candidate keeps (heads x dim for attention)."""
        return candidate[0] * candidate[1] if isinstance(candidate, tuple) else int(candidate)

    def proposed_keep(self, threshold: float) -> list[bool]:
        """Which alive candidates survive a round: p > threshold / K (all of them for a final module)."""
        if self.final or self.alpha is None:
            return [True] * len(self.candidates)
        p = self.probs().detach()
        return (p > threshold / len(self.candidates)).tolist()

    def keep_only(self, keep: list[bool], lam: float) -> bool:
        """Drop the candidates ``keep`` marks False, narrow, finalise at one candidate; True if anything changed.

        Args:
            keep: one flag per alive candidate (at least one True).
            lam: current lambda, frozen into the scale if the module becomes final.
        """
        if self.final or self.alpha is None or all(keep):
            return False
        mask = torch.tensor(keep, dtype=torch.bool, device=self.alpha.device)
        self.candidates = [c for c, k in zip(self.candidates, keep, strict=True) if k]
        # NOTE: survivors keep their logits (p is renormalised); a fresh Parameter resets their optimizer state
        self.alpha = nn.Parameter(self.alpha.detach()[mask].clone())
        self.narrow()
        if len(self.candidates) == 1:
            self.finalize(lam)
        return True

    def prune(self, threshold: float, lam: float) -> bool:
        """Drop candidates with p <= threshold / K, narrow, finalise at one candidate; True if anything changed.

        Args:
            threshold: the OFB constant (0.2).
            lam: current lambda, frozen into the scale if the module becomes final.
        """
        return self.keep_only(self.proposed_keep(threshold), lam)

    def choose(self, index: int, lam: float) -> None:
        """Keep only alive candidate ``index`` and finalise (the end-of-search choice)."""
        if self.final:
            return
        if len(self.candidates) == 1:  # a fixed width (e.g. embed_min 1.0): keep_only sees nothing to drop
            self.finalize(lam)
            return
        self.keep_only([i == index for i in range(len(self.candidates))], lam)

    @torch.no_grad()
    def finalize(self, lam: float) -> None:
        """Freeze the mask of the single remaining candidate into ``scale`` (zero on dropped units)."""
        self.narrow()
        values = self.mask(lam)
        self.scale.zero_()
        self._scatter_alive(values)
        self.final = True
        self.alpha = None

    def blend(self, lam: float, sig: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """M = lambda * sigmoid(S) + (1 - lambda) * V, with V's gradient at full size under ``straight_through``."""
        out = lam * sig + (1 - lam) * v
        return out + lam * (v - v.detach()) if self.straight_through else out

    @abstractmethod
    def refresh(self) -> None:
        """Recompute cached gather indices from ``alive`` (after a load or a narrowing)."""

    @abstractmethod
    def narrow(self) -> None:
        """Drop the lowest-ranked alive units beyond the widest alive candidate."""

    @abstractmethod
    def mask(self, lam: float) -> torch.Tensor:
        """Mask values of the alive units, in gather order."""

    @abstractmethod
    def _scatter_alive(self, values: torch.Tensor) -> None:
        """Write ``values`` (alive units, in gather order) into ``scale``."""


class ChannelMask(BiMask):
    """Bi-mask over a 1-D unit set: embed channels (D,) or MLP neurons (M,)."""

    def __init__(self, name: str, size: int, candidates: list[int], kind: str) -> None:
        self.kind = kind
        super().__init__(name, (size,), candidates)

    def refresh(self) -> None:
        self.idx = torch.nonzero(self.alive).squeeze(1)
        self.full = bool(self.alive.all())  # fast path: no gather while nothing is dropped

    @property
    def width(self) -> int:
        """Alive units."""
        return int(self.idx.numel())

    def importance(self) -> torch.Tensor:
        """sigmoid(S) of the alive units."""
        return torch.sigmoid(self.score if self.full else self.score.index_select(0, self.idx))

    def mask(self, lam: float) -> torch.Tensor:
        if self.final:
            return self.scale if self.full else self.scale.index_select(0, self.idx)
        sig = self.importance()
        return self.blend(lam, sig, self._survival(sig))

    def _survival(self, sig: torch.Tensor) -> torch.Tensor:
        return staircase(self.probs(), self.widths(), self.width)[ranks_desc(sig)]

    def survival(self) -> torch.Tensor:
        """V of the alive units in gather order: the probability each survives (all ones once final)."""
        if self.final or self.alpha is None:
            return torch.ones(self.width, device=self.score.device)
        return self._survival(self.importance().detach())

    @torch.no_grad()
    def narrow(self) -> None:
        widest = int(max(self.candidates))
        if widest >= self.width:
            return
        keep = torch.argsort(self.importance(), descending=True, stable=True)[:widest]
        alive = torch.zeros_like(self.alive)
        alive[self.idx[keep]] = True
        self.alive.copy_(alive)
        self.refresh()

    def _scatter_alive(self, values: torch.Tensor) -> None:
        self.scale[self.idx] = values.detach()


class HeadMask(BiMask):
    """Bi-mask over attention (head, channel) units, shape (H, d); candidates are (heads, head dim) pairs.

    Heads are ranked by the sum of sigmoid(S) over their alive channels, channels within their head.
    """

    kind = "attn"

    def __init__(self, name: str, num_heads: int, head_dim: int, candidates: list[tuple[int, int]]) -> None:
        super().__init__(name, (num_heads, head_dim), candidates)

    def refresh(self) -> None:
        self.head_idx = torch.nonzero(self.alive.any(1)).squeeze(1)
        rows = self.alive[self.head_idx]
        self.ch_idx = torch.nonzero(rows)[:, 1].reshape(len(self.head_idx), -1)
        self.flat_idx = (self.head_idx[:, None] * self.alive.shape[1] + self.ch_idx).reshape(-1)
        self.full = bool(self.alive.all())

    @property
    def heads(self) -> int:
        return int(self.head_idx.numel())

    @property
    def head_dim(self) -> int:
        return int(self.ch_idx.shape[1])

    def importance(self) -> torch.Tensor:
        """sigmoid(S) of the alive units, shape (heads, head_dim)."""
        sig = torch.sigmoid(self.score)
        return sig if self.full else sig[self.head_idx[:, None], self.ch_idx]

    def mask(self, lam: float) -> torch.Tensor:
        if self.final:
            return self.scale if self.full else self.scale[self.head_idx[:, None], self.ch_idx]
        sig = self.importance()
        hs = torch.tensor([c[0] for c in self.candidates], device=sig.device)
        ds = torch.tensor([c[1] for c in self.candidates], device=sig.device)
        v = staircase2d(self.probs(), hs, ds, self.heads, self.head_dim)
        head_rank = ranks_desc(sig.sum(1))
        ch_rank = ranks_desc(sig)
        return self.blend(lam, sig, v[head_rank[:, None], ch_rank])

    @torch.no_grad()
    def narrow(self) -> None:
        max_h = max(c[0] for c in self.candidates)
        max_d = max(c[1] for c in self.candidates)
        if max_h >= self.heads and max_d >= self.head_dim:
            return
        sig = self.importance()
        heads = torch.argsort(sig.sum(1), descending=True, stable=True)[:max_h]
        chans = torch.argsort(sig[heads], dim=1, descending=True, stable=True)[:, :max_d]
        alive = torch.zeros_like(self.alive)
        alive[self.head_idx[heads][:, None], self.ch_idx[heads[:, None], chans]] = True
        self.alive.copy_(alive)
        self.refresh()

    def _scatter_alive(self, values: torch.Tensor) -> None:
        self.scale[self.head_idx[:, None], self.ch_idx] = values.detach()
