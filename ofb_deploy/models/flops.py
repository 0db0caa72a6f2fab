"""The one FLOPs counter of ofb-deploy: multiply-accumulates (MACs) of a ViT from its widths.

Counted per image: the patch-embed convolution, per block the qkv projection, the two attention matmuls
(``q @ k^T`` and ``attn @ v``), the output projection and both MLP layers, and the classifier. LayerNorm,
softmax, GELU and additions are left out, as fvcore and the OFB paper do (DeiT-S: 4.6 GMACs at 224 px).

With N tokens, embed width D, attention width A = heads * head_dim and MLP width M, one block costs

    qkv 3·N·D·A  +  q·kᵀ N²·A  +  attn·v N²·A  +  proj N·A·D  +  fc1 N·D·M  +  fc2 N·M·D.

``macs_from_widths`` is written with plain arithmetic so the same code runs on Python numbers (reports,
slicing) and on tensors of *expected* widths (the differentiable FLOPs loss of the search).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ofb_deploy.models.arch_spec import ArchSpec


def block_macs(num_tokens: int, embed: Any, attn_width: Any, mlp_hidden: Any) -> Any:
    """MACs of one transformer block (numbers or tensors)."""
    n = num_tokens
    attention = 3 * n * embed * attn_width + 2 * n * n * attn_width + n * attn_width * embed
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
    """Total MACs per image from (possibly expected, differentiable) widths.

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


@dataclass(frozen=True)
class MacsReport:
    """MACs per image: total, per block, and the parts outside the blocks."""

    total: int
    blocks: tuple[int, ...]
    patch_embed: int
    head: int

    @property
    def gmacs(self) -> float:
        """Total in GMACs."""
        return self.total / 1e9


def count_macs(spec: ArchSpec) -> MacsReport:
    """MACs per image of the model ``spec`` describes (the number every report and loss uses)."""
    n = spec.num_tokens
    blocks = tuple(
        int(block_macs(n, spec.embed_dim, h * d, m))
        for h, d, m in zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True)
    )
    patch = spec.num_patches * spec.in_chans * spec.patch_size**2 * spec.embed_dim
    head = spec.embed_dim * spec.num_classes
    return MacsReport(total=patch + head + sum(blocks), blocks=blocks, patch_embed=patch, head=head)


def count_params(spec: ArchSpec) -> int:
    """Parameters of the model ``spec`` describes (equals ``sum(p.numel())`` of ``OfbViT(spec)``)."""
    d = spec.embed_dim
    total = spec.in_chans * spec.patch_size**2 * d + d  # patch embed conv
    total += d + spec.num_tokens * d  # cls token, pos embed
    for h, hd, m in zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True):
        a = h * hd
        total += 4 * d  # two LayerNorms
        total += d * 3 * a + (3 * a if spec.qkv_bias else 0) + a * d + d
        total += d * m + m + m * d + d
    total += 2 * d + d * spec.num_classes + spec.num_classes
    return total
