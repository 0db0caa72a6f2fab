"""The baselines OFB is compared with, each cut from the same dense checkpoint to the same MACs.

* ``uniform-keep-embed``: uniform widths that keep the dense embed width (every block the same head dim, all
  heads kept, and MLP width, shrunk by one ratio until the MACs match): an informed prior;
* ``uniform``: fully uniform, the embed width cut by the same ratio too.
  Both take the search's width grid and choose units by L2 magnitude through the hand-written slicing path
  (``slice --arch``).
* ``torch-pruning``: Torch-Pruning's ``MetaPruner`` with its group L2 magnitude importance at one uniform
  ratio over every coupled group (embed channels, head dims, MLP neurons), found by bisection on the ratio;
  ``torch-pruning-taylor`` is the same with its first-order Taylor importance from one training batch.
* ``scratch``: the OFB subnet's widths, randomly initialised.

Every function returns a plain ``OfbViT`` (saved with ``save_subnet`` or trained by the caller).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.flops import count_macs, macs_from_widths
from ofb_deploy.models.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates
from ofb_deploy.models.vit import Attention, OfbViT
from ofb_deploy.utils.io import atomic_write_json

MAC_TOLERANCE = 0.01  # every method is held within 1% of the OFB subnet's MACs


def uniform_counts(dense: ArchSpec, target_macs: int, space: SpaceConfig, keep_embed: bool) -> dict[str, Any]:
    """Uniform widths at ``target_macs`` on the search's width grid: one ratio for every cut axis.

    ``keep_embed``: the dense embed width, every block the same head dim (all heads kept) and MLP width, an
    informed prior (the embed is the width that hurts most to cut). Otherwise fully uniform: the embed too. The
    widths are the search space's candidates (``search.space``), so OFB could have picked them; the MLP widths
    of the blocks may differ by one grid step (the first blocks wider), which is what meeting the MACs within
    ``MAC_TOLERANCE / 2`` on a grid takes. Among the grid points that meet the MACs, the one whose axes are cut
    by the most equal ratios wins.

    Args:
        dense: the dense spec (a ViT with identical blocks).
        target_macs: the MACs to meet.
        space: the search's width grid.
        keep_embed: keep the dense embed width.
    """
    full = count_macs(dense).total
    if not 0 < target_macs <= full:
        raise ConfigError(f"uniform widths: target {target_macs} MACs is outside (0, {full}]")
    h, d, m, e = dense.num_heads[0], dense.head_dim[0], dense.mlp_hidden[0], dense.embed_dim
    embeds = [e] if keep_embed else embed_candidates(e, space)
    dims = sorted({c[1] for c in attn_candidates(h, d, space)})
    best: tuple[float, float, dict[str, Any]] | None = None
    for embed in embeds:
        for dim in dims:
            mlps = _even_mlps(dense, embed, h * dim, target_macs, mlp_candidates(m, space))
            if mlps is None:
                continue
            ratios = [dim / d, sum(mlps) / (len(mlps) * m)] + ([] if keep_embed else [embed / e])
            counts = {"embed_dim": embed, "blocks": [{"heads": h, "head_dim": dim, "mlp_hidden": w} for w in mlps]}
            rank = (max(ratios) - min(ratios), abs(_macs(dense, embed, h * dim, mlps) - target_macs))
            if best is None or rank < best[:2]:
                best = (*rank, counts)
    if best is None:
        kind = "keep-embed uniform" if keep_embed else "uniform"
        raise ConfigError(
            f"{kind} widths cannot meet {target_macs / 1e6:.2f} MMACs within {MAC_TOLERANCE / 2:.1%} on the search's "
            f"width grid (align {space.align}); use a finer grid (search.align 4, a lower search.mlp_min)"
        )
    return best[2]


def _macs(dense: ArchSpec, embed: int, attn: int, mlps: list[int]) -> int:
    return int(
        macs_from_widths(
            num_tokens=dense.num_tokens,
            patch_pixels=dense.in_chans * dense.patch_size**2,
            num_classes=dense.num_classes,
            embed=embed,
            attn_widths=[attn] * dense.depth,
            mlp_hiddens=mlps,
        )
    )


def _even_mlps(dense: ArchSpec, embed: int, attn: int, target: int, grid: list[int]) -> list[int] | None:
    """MLP widths on ``grid``, differing by at most one step between blocks, closest to ``target`` MACs (``None``
    when the closest misses it by more than half the tolerance)."""
    depth, best = dense.depth, None
    for low, high in zip(grid, grid[1:] + grid[-1:], strict=True):
        for wide in range(depth + 1 if high != low else 1):
            mlps = [high] * wide + [low] * (depth - wide)
            gap = abs(_macs(dense, embed, attn, mlps) - target)
            if best is None or gap < best[0]:
                best = (gap, mlps)
    assert best is not None
    return best[1] if best[0] <= MAC_TOLERANCE / 2 * target else None


def write_counts(counts: dict[str, Any], path: Path) -> Path:
    """Write a hand-written width file (the input of ``slice --arch``)."""
    atomic_write_json(path, counts)
    return path


def _fold_q_scale(model: OfbViT, dense_head_dim: tuple[int, ...]) -> None:
    """Fold sqrt(d'/d) into the q rows so the narrowed SDPA scale 1/sqrt(d') reproduces the dense 1/sqrt(d)."""
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            attn = block.attn
            rows = attn.num_heads * attn.head_dim
            fix = math.sqrt(attn.head_dim / dense_head_dim[i])
            attn.qkv.weight[:rows] *= fix
            if attn.qkv.bias is not None:
                attn.qkv.bias[:rows] *= fix


def _tp_prune(dense: OfbViT, ratio: float, batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> OfbViT:
    """A copy of ``dense`` pruned by Torch-Pruning at one uniform ``ratio`` (head dims, MLP, embed).

    With ``batch`` (images, labels) the importance is Torch-Pruning's first-order Taylor score, from the
    gradient of the cross-entropy on that batch; without it, group L2 magnitude.
    """
    import copy

    import torch_pruning as tp

    model = copy.deepcopy(dense).eval()
    spec = model.spec
    example = torch.zeros(1, spec.in_chans, spec.img_size, spec.img_size)
    heads = {m.qkv: m.num_heads for m in model.modules() if isinstance(m, Attention)}
    if batch is None:
        scorer = tp.importance.GroupMagnitudeImportance(p=2)
    else:
        scorer = tp.importance.GroupTaylorImportance()
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=scorer,
        pruning_ratio=ratio,
        ignored_layers=[model.head],
        num_heads=heads,
        prune_head_dims=True,
        prune_num_heads=False,
        unwrapped_parameters=[(model.cls_token, 2), (model.pos_embed, 2)],
    )
    pruner.step()
    for module in model.modules():
        if isinstance(module, Attention):
            module.num_heads = pruner.num_heads[module.qkv]
            module.head_dim = module.qkv.out_features // (3 * module.num_heads)
    return model


def _rebuild_spec(pruned: OfbViT, dense: ArchSpec) -> ArchSpec:
    return dense.replace(
        embed_dim=pruned.patch_embed.proj.out_channels,
        num_heads=tuple(b.attn.num_heads for b in pruned.blocks),
        head_dim=tuple(b.attn.head_dim for b in pruned.blocks),
        mlp_hidden=tuple(b.mlp.fc1.out_features for b in pruned.blocks),
    )


def _rebuild(pruned: OfbViT, dense: ArchSpec) -> OfbViT:
    """The pruned module as a clean ``OfbViT`` of its own spec (same state-dict keys, new shapes)."""
    model = OfbViT(_rebuild_spec(pruned, dense))
    model.load_state_dict(pruned.state_dict())
    _fold_q_scale(model, dense.head_dim)
    return model


def torch_pruning_subnet(
    dense: OfbViT,
    target_macs: int,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[OfbViT, float]:
    """Torch-Pruning at the uniform ratio whose MACs come closest to ``target_macs``; returns (model, ratio).

    Args:
        dense: the dense model (not modified).
        target_macs: the MACs to meet.
        batch: training images and labels for the Taylor importance; ``None``: group L2 magnitude.
    """
    lo, hi = 0.0, 0.95
    dense_gap = abs(count_macs(dense.spec).total - target_macs) / target_macs
    best: tuple[float, float, OfbViT] = (dense_gap, 0.0, _tp_prune(dense, 0.0))
    for _ in range(14):  # bisection on the ratio; MACs fall as it grows (in steps of whole channels)
        ratio = (lo + hi) / 2
        model = _tp_prune(dense, ratio, batch)
        macs = count_macs(_rebuild_spec(model, dense.spec)).total
        gap = abs(macs - target_macs) / target_macs
        if gap < best[0]:
            best = (gap, ratio, model)
        if macs > target_macs:
            lo = ratio
        else:
            hi = ratio
    return _rebuild(best[2], dense.spec), best[1]


def scratch_subnet(spec: ArchSpec, seed: int) -> OfbViT:
    """A randomly initialised model of ``spec`` (timm's ViT initialisation, seeded).

    Args:
        spec: the subnet's widths (the OFB subnet's).
        seed: the initialisation seed.
    """
    torch.manual_seed(seed)
    return OfbViT(spec)
