"""OFB search losses besides CE: the adaptive one-hot loss and the FLOPs constraint (arXiv 2403.15835, sec. 3.3).

One-hot loss of a module with K alive candidates (none when K = 1)::

    L_onehot = H(p) + cot(pi * s(p)) / K + c * sum_u sigmoid(S_u),
    s(p) = sum_k (p_k - mean p)^2 / (1 - 1/K)    (0 at uniform p, 1 at a one-hot p)

The entropy and the cot term both fall as p sharpens; cot(pi s) diverges at both ends, so s is squeezed into
[eps, 1 - eps] (affinely, keeping its gradient). FLOPs loss: ((F_soft - F_target) / F_dense)^2 with F_soft
from the ONE counter, ``models.flops.macs_from_widths``, at the expected widths.
"""

from __future__ import annotations

import math

import torch

from ofb_deploy.search.masks import BiMask

SPREAD_EPS = 0.02  # keeps cot(pi * s) finite at uniform and one-hot p


def spread(p: torch.Tensor) -> torch.Tensor:
    """s(p) in [0, 1]: the variance of p relative to a one-hot vector's."""
    k = p.numel()
    return ((p - 1.0 / k) ** 2).sum() / (1.0 - 1.0 / k)


def onehot_loss(p: torch.Tensor) -> torch.Tensor:
    """Entropy plus the adaptive cot term of one candidate distribution (0 when one candidate is left).

    Args:
        p: candidate probabilities, shape (K,).
    """
    k = p.numel()
    if k <= 1:
        return p.sum() * 0.0
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    s = SPREAD_EPS + (1.0 - 2.0 * SPREAD_EPS) * spread(p)
    return entropy + 1.0 / torch.tan(math.pi * s) / k


def module_onehot_loss(mask: BiMask, score_weight: float) -> torch.Tensor:
    """One-hot loss of a module plus its score L1 term ``c * sum sigmoid(S)`` over alive units.

    Args:
        mask: the module's bi-mask (final modules give 0).
        score_weight: c_m (4e-4 attention, 1e-4 MLP and embed in OFB).
    """
    if mask.final or mask.alpha is None:
        return mask.score.sum() * 0.0
    return onehot_loss(mask.probs()) + score_weight * mask.importance().sum()


def budget_loss(expected: torch.Tensor | float, target: float, dense: float) -> torch.Tensor:
    """((E - target) / dense)^2 for MACs (OFB FLOPs loss) or predicted latency; differentiable in ``expected``."""
    soft = torch.as_tensor(expected, dtype=torch.float32)
    return ((soft - target) / dense) ** 2
