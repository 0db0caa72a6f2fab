"""Unit importance from weight magnitude, for hand-written widths and for ``--align`` top-ups.

Where the search's scales say nothing (a dense checkpoint, or units the search dropped, whose scale is zero),
a unit is ranked by the squared L2 norm of every weight that reads from or writes to it (the magnitude criterion
of Li et al. 2017, "Pruning Filters for Efficient ConvNets", applied to the coupled groups of a ViT as
Torch-Pruning's ``GroupMagnitudeImportance(p=2)`` does). Each tensor's contribution is divided by its mean, so a
large tensor (fc1) does not drown a small one (the patch embedding). A Swin stage's channels are written by the
patch embedding or the stage's patch merging and read by the next merging (all four of its token groups) or
the head.
"""

from __future__ import annotations

import torch

from ofb_deploy.models.arch_spec import ArchSpec


def _sq(weight: torch.Tensor, dim: int | tuple[int, ...]) -> torch.Tensor:
    """Squared L2 norm of ``weight`` reduced over ``dim``."""
    return weight.to(torch.float64).pow(2).sum(dim)


def _norm(values: torch.Tensor) -> torch.Tensor:
    values = values.to(torch.float64)
    mean = values.mean()
    return values / mean if mean > 0 else values


def _block_parts(state: dict[str, torch.Tensor], spec: ArchSpec, blocks: range) -> list[torch.Tensor]:
    parts = []
    for i in blocks:
        p = spec.block_prefix(i)
        parts.append(_sq(state[p + "attn.qkv.weight"], 0))
        parts.append(_sq(state[p + "attn.proj.weight"], 1))
        parts.append(_sq(state[p + "mlp.fc1.weight"], 0))
        parts.append(_sq(state[p + "mlp.fc2.weight"], 1))
    return parts


def embed_importance(state: dict[str, torch.Tensor], spec: ArchSpec) -> torch.Tensor:
    """Importance of each residual-stream channel of a ViT, shape ``(embed_dim,)``."""
    parts = [
        _sq(state["patch_embed.proj.weight"].flatten(1), 1),
        _sq(state["head.weight"], 0),
    ]
    return sum(_norm(x) for x in parts + _block_parts(state, spec, range(spec.depth)))


def stage_importance(state: dict[str, torch.Tensor], spec: ArchSpec, stage: int) -> torch.Tensor:
    """Importance of each residual channel of ``stage``, shape ``(stage width,)`` (a ViT's one stage: the embed)."""
    if spec.family != "swin":
        return embed_importance(state, spec)
    if stage == 0:
        parts = [_sq(state["patch_embed.proj.weight"].flatten(1), 1)]
    else:
        parts = [_sq(state[f"layers.{stage}.downsample.reduction.weight"], 1)]
    if stage + 1 < spec.num_stages:  # read by the next merging from each of its 4 token groups
        reduction = state[f"layers.{stage + 1}.downsample.reduction.weight"]
        parts.append(_sq(reduction.reshape(reduction.shape[0], 4, -1), (0, 1)))
    else:
        parts.append(_sq(state["head.fc.weight"], 0))
    return sum(_norm(x) for x in parts + _block_parts(state, spec, spec.stage_blocks(stage)))


def attn_importance(state: dict[str, torch.Tensor], spec: ArchSpec, block: int) -> torch.Tensor:
    """Importance of each (head, channel) of a block, shape ``(heads, head_dim)``; heads rank by row sums."""
    p = spec.block_prefix(block) + "attn."
    h, d = spec.num_heads[block], spec.head_dim[block]
    qkv = _sq(state[p + "qkv.weight"], 1).reshape(3, h * d)
    score = sum(_norm(x) for x in qkv) + _norm(_sq(state[p + "proj.weight"], 0))
    return score.reshape(h, d)


def mlp_importance(state: dict[str, torch.Tensor], spec: ArchSpec, block: int) -> torch.Tensor:
    """Importance of each MLP neuron of a block, shape ``(mlp_hidden,)``."""
    p = spec.block_prefix(block) + "mlp."
    return _norm(_sq(state[p + "fc1.weight"], 1)) + _norm(_sq(state[p + "fc2.weight"], 0))


def top_k(
    scores: torch.Tensor,
    k: int,
    keep: tuple[int, ...] = (),
    tiebreak: torch.Tensor | None = None,
) -> tuple[int, ...]:
    """Ascending indices of ``keep`` plus the best other entries of ``scores``, ``k`` in all.

    Args:
        scores: one score per unit (higher is more important).
        k: how many indices to return (``>= len(keep)``).
        keep: indices that stay whatever their score.
        tiebreak: second score for equal ``scores`` (e.g. magnitude among units the search zeroed); then index.
    """
    kept = set(keep)
    others = [i for i in range(scores.numel()) if i not in kept]
    second = tiebreak if tiebreak is not None else torch.zeros_like(scores)
    # Python's sort is stable: units equal on both scores keep index order, so the choice is deterministic
    order = sorted(others, key=lambda i: (-float(scores[i]), -float(second[i])))
    return tuple(sorted(kept | set(order[: k - len(kept)])))
