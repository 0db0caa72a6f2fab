"""The one FLOPs counter of ofb-deploy: multiply-accumulates (MACs) of a ViT or Swin from its widths.

Counted per image: the patch-embed convolution, per block the qkv projection, the two attention matmuls
(``q @ k^T`` and ``attn @ v``), the output projection and both MLP layers, Swin's patch-merging projections,
and the classifier. LayerNorm, softmax, GELU, the relative-position bias, pooling and additions are left out,
as fvcore and the OFB and Swin papers do (DeiT-S: 4.6 GMACs, Swin-T: 4.5 GMACs at 224 px).

A block with N tokens, each attending to K of them (ViT: K = N, global; Swin: K = window area), embed width D,
attention width A = heads * head_dim and MLP width M costs

    qkv 3·N·D·A  +  q·kᵀ N·K·A  +  attn·v N·K·A  +  proj N·A·D  +  fc1 N·D·M  +  fc2 N·M·D.

Outside the blocks: the stem ``P·p²C·D₀`` (P patches), a Swin patch merging into stage s ``N_s·4D_{s-1}·D_s``
and the head ``D_last·classes``. So once the stage widths are fixed, the total is a sum of per-module terms
(what ``search/finalize.py`` relies on), and a stage width couples only its own blocks, its two neighbouring
patch mergings, and the stem or head.

Everything here is plain arithmetic, so the same code runs on Python numbers (reports, slicing) and on tensors
of *expected* widths (the differentiable FLOPs loss of the search).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ofb_deploy.models.arch_spec import ArchSpec


def block_macs(num_tokens: int, embed: Any, attn_width: Any, mlp_hidden: Any, keys: int | None = None) -> Any:
    """MACs of one transformer block (numbers or tensors).

    Args:
        num_tokens: tokens N the block processes.
        embed: residual width D.
        attn_width: heads * head_dim.
        mlp_hidden: MLP width.
        keys: tokens each query attends to (default N: global attention).
    """
    n = num_tokens
    k = n if keys is None else keys
    attention = 3 * n * embed * attn_width + 2 * n * k * attn_width + n * attn_width * embed
    return attention + 2 * n * embed * mlp_hidden


def macs_from_widths(
    *,
    num_tokens: int,
    patch_pixels: int,
    num_classes: int,
    embed: Any,
    attn_widths: Sequence[Any],
    mlp_hiddens: Sequence[Any],
) -> Any:
    """Total MACs per image of a class-token ViT from (possibly expected, differentiable) widths.

    Args:
        num_tokens: tokens per image, class token included.
        patch_pixels: ``in_chans * patch_size**2`` (the patch-embed fan-in).
        num_classes: classifier outputs.
        embed: residual-stream width.
        attn_widths: per block ``heads * head_dim``.
        mlp_hiddens: per block MLP hidden width.
    """
    total = (num_tokens - 1) * patch_pixels * embed + embed * num_classes
    for attn, mlp in zip(attn_widths, mlp_hiddens, strict=True):
        total = total + block_macs(num_tokens, embed, attn, mlp)
    return total


# -- per-module terms of any family (the decomposition ``search/finalize.py`` solves over) ---------------------
def block_tokens(spec: ArchSpec, block: int) -> tuple[int, int]:
    """(tokens, keys per query) of ``block``: ViT (N, N); Swin (grid², window²) of the block's stage."""
    if spec.family != "swin":
        return spec.num_tokens, spec.num_tokens
    stage = spec.block_stage[block]
    return spec.stage_grid(stage) ** 2, spec.stage_window(stage)[0] ** 2


def block_cost(spec: ArchSpec, block: int, embed: Any, attn_width: Any, mlp_hidden: Any) -> Any:
    """MACs of ``block`` at residual width ``embed`` (numbers or tensors)."""
    tokens, keys = block_tokens(spec, block)
    return block_macs(tokens, embed, attn_width, mlp_hidden, keys)


def stem_macs(spec: ArchSpec, width: Any) -> Any:
    """MACs of the patch-embedding convolution at output width ``width``."""
    return spec.num_patches * spec.in_chans * spec.patch_size**2 * width


def transition_macs(spec: ArchSpec, stage: int, previous: Any, width: Any) -> Any:
    """MACs of the patch merging into ``stage`` (> 0): a 4·previous -> width projection per merged token."""
    return spec.stage_grid(stage) ** 2 * 4 * previous * width


def head_macs(spec: ArchSpec, width: Any) -> Any:
    """MACs of the classifier over a ``width``-wide feature."""
    return width * spec.num_classes


def model_macs(
    spec: ArchSpec,
    stage_widths: Sequence[Any],
    attn_widths: Sequence[Any],
    mlp_hiddens: Sequence[Any],
) -> Any:
    """Total MACs per image of ``spec``'s layout at the given (possibly expected, differentiable) widths.

    Args:
        spec: the dense model (geometry, family, classes).
        stage_widths: residual width per stage (one for a ViT).
        attn_widths: per block ``heads * head_dim``.
        mlp_hiddens: per block MLP width.
    """
    if spec.family != "swin":  # NOTE: the ViT path keeps its historical formula and summation order
        return macs_from_widths(
            num_tokens=spec.num_tokens,
            patch_pixels=spec.in_chans * spec.patch_size**2,
            num_classes=spec.num_classes,
            embed=stage_widths[0],
            attn_widths=attn_widths,
            mlp_hiddens=mlp_hiddens,
        )
    total = stem_macs(spec, stage_widths[0]) + head_macs(spec, stage_widths[-1])
    for stage in range(1, spec.num_stages):
        total = total + transition_macs(spec, stage, stage_widths[stage - 1], stage_widths[stage])
    for i, (attn, mlp) in enumerate(zip(attn_widths, mlp_hiddens, strict=True)):
        total = total + block_cost(spec, i, stage_widths[spec.block_stage[i]], attn, mlp)
    return total


@dataclass(frozen=True)
class MacsReport:
    """MACs per image: total, per block, and the parts outside the blocks."""

    total: int
    blocks: tuple[int, ...]
    patch_embed: int
    head: int
    merging: int = 0  # Swin's patch mergings

    @property
    def gmacs(self) -> float:
        """Total in GMACs."""
        return self.total / 1e9


def count_macs(spec: ArchSpec) -> MacsReport:
    """MACs per image of the model ``spec`` describes (the number every report and loss uses)."""
    widths = spec.stage_widths
    blocks = tuple(
        int(block_cost(spec, i, widths[spec.block_stage[i]], h * d, m))
        for i, (h, d, m) in enumerate(zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True))
    )
    merging = sum(transition_macs(spec, s, widths[s - 1], widths[s]) for s in range(1, spec.num_stages))
    patch, head = stem_macs(spec, widths[0]), head_macs(spec, widths[-1])
    return MacsReport(patch + head + merging + sum(blocks), blocks, patch, head, merging)


def count_params(spec: ArchSpec) -> int:
    """Parameters of the model ``spec`` describes (equals ``sum(p.numel())`` of the built model)."""
    widths = spec.stage_widths
    total = spec.in_chans * spec.patch_size**2 * widths[0] + widths[0]  # patch embed conv
    if spec.family == "swin":
        total += 2 * widths[0]  # patch embed norm
        total += sum(8 * widths[s - 1] + 4 * widths[s - 1] * widths[s] for s in range(1, spec.num_stages))
    else:
        total += widths[0] + spec.num_tokens * widths[0]  # cls token, pos embed
    for i, (h, hd, m) in enumerate(zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True)):
        d, a = widths[spec.block_stage[i]], h * hd
        total += 4 * d  # two LayerNorms
        total += d * 3 * a + (3 * a if spec.qkv_bias else 0) + a * d + d
        total += d * m + m + m * d + d
        if spec.family == "swin":  # relative-position bias table
            total += (2 * spec.stage_window(spec.block_stage[i])[0] - 1) ** 2 * h
    total += 2 * widths[-1] + widths[-1] * spec.num_classes + spec.num_classes
    return total
