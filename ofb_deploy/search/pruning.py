"""Progressive hard pruning of the OFB search (arXiv 2403.15835, sec. 3.2).

Three times per epoch every module drops the candidates with p <= 0.2 / K. Survivors keep their logits (p is
renormalised) in a NEW alpha parameter, so their AdamW moments start afresh; modules that did not change keep
theirs. When the widest survivor is narrower than the alive units, the lowest-ranked units are dropped for
good; a module left with one candidate becomes final. Under torchrun the alphas and scores are broadcast
from rank 0 afterwards so every rank keeps the identical architecture.
"""

from __future__ import annotations

import logging

import torch

from ofb_deploy.search.masks import BiMask
from ofb_deploy.search.supernet import OfbSupernet
from ofb_deploy.utils.dist import broadcast_

log = logging.getLogger(__name__)

ALPHA_BETAS = (0.5, 0.999)


def make_alpha_optimizer(
    supernet: OfbSupernet,
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


def describe(mask: BiMask) -> str:
    """Short text of a module's current candidates (for logs)."""
    cands = [f"{c[0]}x{c[1]}" if isinstance(c, tuple) else str(c) for c in mask.candidates]
    return f"{mask.name}: {'final ' if mask.final else ''}{', '.join(cands)}"


def sync_search_state(supernet: OfbSupernet) -> None:
    """Broadcast alphas and scores from rank 0 (no-op on one process)."""
    for mask in supernet.masks():
        broadcast_(mask.score.data)
        if mask.alpha is not None:
            broadcast_(mask.alpha.data)


def prune_round(supernet: OfbSupernet, threshold: float, lam: float) -> list[str]:
    """One hard-pruning round over every module; returns descriptions of the modules that changed.

    Args:
        supernet: the supernet.
        threshold: the OFB constant (0.2).
        lam: current lambda (frozen into newly final masks).
    """
    changed = []
    for mask in supernet.masks():
        if mask.prune(threshold, lam):
            changed.append(describe(mask))
    for line in changed:
        log.debug("pruned %s", line)
    return changed


def harden_all(supernet: OfbSupernet, lam: float) -> list[str]:
    """Finalise every unconverged module at its arg-max candidate; returns their names."""
    names = []
    for mask in supernet.masks():
        if not mask.final:
            names.append(mask.name)
            mask.harden(lam)
    return names
