"""Planted redundancy: the quick test that a search reads the data.

Zero every weight and bias of some attention and MLP modules of a converged model. A zeroed attention module
(``qkv`` and ``proj``) or MLP (``fc1`` and ``fc2``) outputs exactly zero, and stays dead under training: every
gradient into its weights passes through one of its own zero matrices. Only the output layer's bias learns
(it is added to the residual stream), a constant that depends neither on the input nor on the module's width.
So the module's width cannot change the loss: a search that reads the data gives each dead module a smaller
width than every live module of its kind; a search whose widths come from its budget dynamics alone does not
(docs/method.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ofb_deploy.errors import ConfigError


def plant_dead_modules(model: nn.Module, attn: Sequence[int] = (), mlp: Sequence[int] = ()) -> nn.Module:
    """Zero the attention modules of blocks ``attn`` and the MLPs of blocks ``mlp`` of a ViT, in place.

    Args:
        model: a dense ``OfbViT``.
        attn: blocks whose attention (``qkv`` and ``proj``, weights and biases) is zeroed.
        mlp: blocks whose MLP (``fc1`` and ``fc2``, weights and biases) is zeroed.
    """
    depth = len(model.blocks)
    for block in (*attn, *mlp):
        if not 0 <= block < depth:
            raise ConfigError(f"block {block} does not exist: the model has blocks 0..{depth - 1}")
    with torch.no_grad():
        for i in attn:
            for layer in (model.blocks[i].attn.qkv, model.blocks[i].attn.proj):
                _zero(layer)
        for i in mlp:
            for layer in (model.blocks[i].mlp.fc1, model.blocks[i].mlp.fc2):
                _zero(layer)
    return model


def _zero(layer: nn.Linear) -> None:
    layer.weight.zero_()
    if layer.bias is not None:
        layer.bias.zero_()


def planted_verdict(blocks: Sequence[dict[str, Any]], attn: Sequence[int] = (), mlp: Sequence[int] = ()) -> dict:
    """Whether each dead module is narrower than every live module of its kind, from a search result's blocks.

    Args:
        blocks: the ``blocks`` of a search result (``heads``, ``head_dim``, ``mlp_hidden`` per block).
        attn: blocks whose attention was zeroed.
        mlp: blocks whose MLP was zeroed.
    """
    attn_w = [b["heads"] * b["head_dim"] for b in blocks]
    mlp_w = [b["mlp_hidden"] for b in blocks]
    out: dict[str, Any] = {"attn_widths": attn_w, "mlp_widths": mlp_w, "dead_attn": list(attn), "dead_mlp": list(mlp)}
    checks = []
    for kind, widths, dead in (("attn", attn_w, attn), ("mlp", mlp_w, mlp)):
        live = [w for i, w in enumerate(widths) if i not in dead]
        for i in dead:
            checks.append({"module": f"blocks.{i}.{kind}", "width": widths[i], "narrowest_live": min(live),
                           "passed": widths[i] < min(live)})  # fmt: skip
    out["checks"] = checks
    out["passed"] = all(c["passed"] for c in checks)
    return out
