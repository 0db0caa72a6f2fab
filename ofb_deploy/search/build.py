"""``build_supernet``: the supernet of a dense model, by its family (the one place that maps family to supernet).

A new family adds its supernet module here, next to its model in ``models.registry.FAMILY_MODELS``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ofb_deploy.models.space import SpaceConfig
from ofb_deploy.search.supernet import OfbSupernet, SupernetBase
from ofb_deploy.search.swin_supernet import SwinSupernet

FAMILY_SUPERNETS: dict[str, Callable[..., SupernetBase]] = {"vit": OfbSupernet, "swin": SwinSupernet}


def build_supernet(model: nn.Module, space: SpaceConfig | None = None) -> SupernetBase:
    """The OFB supernet over ``model`` (its parameters are trained in place).

    Args:
        model: a dense ``OfbViT`` or ``OfbSwin``.
        space: candidate grid settings (default ``SpaceConfig()``).
    """
    return FAMILY_SUPERNETS[model.spec.family](model, space)
