"""Progressive hard pruning of the OFB search (arXiv 2403.15835, sec. 3.2).

Every ``prune_every`` steps (from the first step on) every module drops the candidates with p <= 0.2 / K, unless
that would leave the target out of reach (``finalize.guard_round``). Survivors keep their logits (p is
renormalised) in a NEW alpha parameter, so their AdamW moments start afresh; modules that did not change keep
theirs. When the widest survivor is narrower than the alive units, the lowest-ranked units are dropped for
good; a module left with one candidate becomes final. Under torchrun the alphas and scores are broadcast
from rank 0 afterwards so every rank keeps the identical architecture.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ofb_deploy.search.cost import Cost
from ofb_deploy.search.finalize import guard_round
from ofb_deploy.search.masks import BiMask
from ofb_deploy.search.supernet import SupernetBase
from ofb_deploy.utils.dist import broadcast_

log = logging.getLogger(__name__)

ALPHA_BETAS = (0.5, 0.999)


def make_alpha_optimizer(
    supernet: SupernetBase,
    lr: float,
    previous: torch.optim.Optimizer | None = None,
) -> torch.optim.Optimizer | None:
    """AdamW over the alive alphas; states of alphas also in ``previous`` carry over (``None`` if all final).

    Args:
        supernet: the supernet.
        lr: alpha learning rate.
        previous: the optimizer being replaced.
    """
    _, alphas = supernet.search_parameters()
    if not alphas:
        return None
    opt = torch.optim.AdamW(alphas, lr=lr, betas=ALPHA_BETAS, weight_decay=0.0, foreach=True)
    if previous is not None:
        for p in alphas:
            if p in previous.state:
                opt.state[p] = previous.state[p]
    return opt


def candidate_labels(mask: BiMask) -> list[str]:
    """The alive candidates as short labels (``2x16`` for attention, widths otherwise)."""
    return [f"{c[0]}x{c[1]}" if isinstance(c, tuple) else str(c) for c in mask.candidates]


def describe(mask: BiMask) -> str:
    """Short text of a module's current candidates (for logs)."""
    return f"{mask.name}: {'final ' if mask.final else ''}{', '.join(candidate_labels(mask))}"


def sync_search_state(supernet: SupernetBase) -> None:
    """Broadcast alphas and scores from rank 0 (no-op on one process)."""
    for mask in supernet.masks():
        broadcast_(mask.score.data)
        if mask.alpha is not None:
            broadcast_(mask.alpha.data)


def prune_round(
    supernet: SupernetBase,
    threshold: float,
    lam: float,
    cost: Cost,
    target: float,
) -> list[dict[str, Any]]:
    """One hard-pruning round over every module; returns one record per module that changed.

    Candidates with p <= threshold / K are proposed for dropping; ``finalize.guard_round`` keeps some if the
    survivors could no longer combine to within 1% of the target. Each record: ``module``, ``before`` and
    ``after`` (candidate labels) and ``final``.

    Args:
        supernet: the supernet.
        threshold: the OFB constant (0.2).
        lam: current lambda (frozen into newly final masks).
        cost: what the target counts (MACs or predicted latency).
        target: the target in the cost's unit.
    """
    keep = {m.name: m.proposed_keep(threshold) for m in supernet.masks()}
    if any(not all(flags) for flags in keep.values()):
        keep = guard_round(supernet, keep, cost, target)
    changed = []
    for mask in supernet.masks():
        before = candidate_labels(mask)
        if mask.keep_only(keep[mask.name], lam):
            after = candidate_labels(mask)
            changed.append({"module": mask.name, "before": before, "after": after, "final": mask.final})
    for record in changed:
        log.debug("pruned %s: %s -> %s", record["module"], record["before"], record["after"])
    return changed
