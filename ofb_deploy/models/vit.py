"""A dense Vision Transformer whose blocks each have their own widths, built from an ``ArchSpec``.

timm's ``VisionTransformer`` gives every block the same ``num_heads`` and ``mlp_ratio``, so an OFB subnet
(per-block heads, head dim and MLP width) needs its own module. The parameter names follow timm's
``VisionTransformer`` exactly (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.i.attn.qkv`` ...),
so timm DeiT/ViT state dicts load unchanged. The model is an ordinary ``nn.Module`` with no masks or index
ops: ``torch.onnx.export`` and ``torch.compile`` handle it, and ``LayerNorm`` exports as one op at opset 17+.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ofb_deploy.models.arch_spec import ArchSpec

LN_EPS = 1e-6  # timm ViT/DeiT use eps=1e-6


class PatchEmbed(nn.Module):
    """Image to patch tokens with one strided convolution (timm key: ``patch_embed.proj``)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with an explicit head count and head dim (width ``heads * head_dim``).

    The softmax scale is ``1/sqrt(head_dim)``. A sliced subnet whose head dim shrank keeps the ORIGINAL
    scale by having ``sqrt(d'/d)`` folded into the q rows of ``qkv`` (see ``ofb_deploy.slicing``).
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim
        self.qkv = nn.Linear(dim, inner * 3, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class Mlp(nn.Module):
    """Two-layer GELU MLP (timm keys ``mlp.fc1`` / ``mlp.fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, mlp_hidden: int, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, head_dim, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class OfbViT(nn.Module):
    """Class-token ViT (DeiT/ViT layout) with per-block widths.

    Args:
        spec: the architecture; kept as ``self.spec``.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        dim = spec.embed_dim
        self.patch_embed = PatchEmbed(spec.patch_size, spec.in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, spec.num_tokens, dim))
        self.blocks = nn.ModuleList(
            Block(dim, h, d, m, spec.qkv_bias)
            for h, d, m in zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True)
        )
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = nn.Linear(dim, spec.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's ViT initialisation: truncated normal(0.02) for weights, zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels to the token sequence (class token first), position embedding added."""
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens, shape (B, N+1, D)."""
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Class-token logits."""
        return self.head(x[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
