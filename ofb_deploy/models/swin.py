"""A dense Swin Transformer whose blocks and stages each have their own widths, built from an ``ArchSpec``.

Swin (Liu et al., ICCV 2021, arXiv 2103.14030) splits the image into patches, then runs stages of blocks at a
shrinking token grid: between two stages a *patch merging* concatenates each 2x2 group of tokens (4C channels),
normalises and projects them to the next stage's width. Inside a block, attention runs within non-overlapping
``w x w`` windows, with a learned bias per head indexed by the relative position of the two tokens; every
second block cyclically shifts the grid by ``w // 2`` first, and a mask keeps tokens that the shift brought
together from different image regions from attending to each other. Logits come from the average token.

timm's ``SwinTransformer`` gives every block of a stage the same heads and MLP ratio, so an OFB subnet needs its
own module. Parameter names follow timm exactly (``patch_embed.proj/norm``, ``layers.i.downsample.norm/
reduction``, ``layers.i.blocks.j.attn.qkv``, ``attn.relative_position_bias_table``, ``attn.proj``,
``mlp.fc1/fc2``, ``norm``, ``head.fc``), so timm Swin state dicts load unchanged. The shift mask and the
relative-position index are non-persistent buffers, rebuilt from the spec. Attention is written out as
matmuls (as timm's default path): the explicit ``1/sqrt(head_dim)`` keeps the sliced model's q-row folding
exact, and the graph exports to plain ``MatMul``/``Softmax`` ONNX ops; ``torch.roll`` exports as
``Slice``+``Concat``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ofb_deploy.errors import ModelError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.vit import Mlp

LN_EPS = 1e-5  # timm's Swin uses nn.LayerNorm's default eps
MASK_VALUE = -100.0  # what the reference implementation adds between tokens of different shifted regions


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) to (B * windows, window * window, C), windows in row-major order."""
    b, h, w, c = x.shape
    if h == w == window:  # one window: a reshape (no 6-D transpose in the exported graph)
        return x.reshape(b, window * window, c)
    x = x.reshape(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (B * windows, window * window, C) to (B, H, W, C)."""
    c = windows.shape[-1]
    if h == w == window:
        return windows.reshape(-1, h, w, c)
    x = windows.reshape(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """(N, N) row of the bias table for each token pair of a window (N = window**2).

    The offset (dy, dx) of two tokens lies in [-(w-1), w-1]^2; shifted to [0, 2w-2]^2 it is a row-major index
    into the (2w-1)^2-row table.
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), both in [0, 2w-2]
    return rel[0] * (2 * window - 1) + rel[1]


def shift_mask(grid: int, window: int, shift: int) -> torch.Tensor | None:
    """Additive attention mask of a shifted block, shape (windows, N, N): 0 within a region, -100 across.

    After rolling the grid by ``-shift``, the last ``shift`` rows and columns hold tokens from the opposite
    border. Label the 3x3 regions cut at ``grid - window`` and ``grid - shift`` on each axis; two tokens of a
    window may attend to each other only if they carry the same label.
    """
    if shift == 0:
        return None
    cuts = (0, grid - window, grid - shift, grid)
    labels = torch.zeros(grid, grid)
    for i in range(3):
        for j in range(3):
            labels[cuts[i] : cuts[i + 1], cuts[j] : cuts[j + 1]] = 3 * i + j
    windows = window_partition(labels[None, :, :, None], window).squeeze(-1)  # (windows, N)
    differ = windows[:, :, None] != windows[:, None, :]
    return torch.zeros(differ.shape).masked_fill(differ, MASK_VALUE)


class PatchEmbed(nn.Module):
    """Strided convolution then LayerNorm, output (B, H, W, C) (timm keys ``patch_embed.proj``/``norm``)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """2x2 token groups to one token: concat (4C), LayerNorm, bias-free projection to the next width."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=LN_EPS)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(merge_groups(x)))


def merge_groups(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) to (B, H/2, W/2, 4C); channel ``g * C + c`` is channel c of the group's token g.

    Token order within a 2x2 group is (0,0), (1,0), (0,1), (1,1) as (row, column), timm's order, so its
    ``downsample.norm`` and ``reduction`` weights apply unchanged.
    """
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c)


class WindowAttention(nn.Module):
    """Multi-head attention within windows, with a relative-position bias per head.

    Args:
        dim: input width.
        num_heads: heads.
        head_dim: per-head q/k/v dim (the softmax scale is ``1/sqrt(head_dim)``).
        window: window side in tokens.
        qkv_bias: whether the qkv projection has a bias.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, window: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.window = num_heads, head_dim, window
        inner = num_heads * head_dim
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, inner * 3, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) bias of every token pair of a window."""
        n = self.window * self.window
        return self.relative_position_bias_table[self.relative_position_index.reshape(-1)].reshape(n, n, -1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x``: (B * windows, N, C); ``mask``: (windows, N, N) or ``None``."""
        bw, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
        return self.proj(window_softmax_v(attn, self.position_bias().permute(2, 0, 1), mask, v))


def window_softmax_v(
    attn: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None, v: torch.Tensor
) -> torch.Tensor:
    """softmax(attn + bias [+ mask]) @ v, heads merged: (B * windows, N, heads * d).

    Args:
        attn: scaled q.k, (B * windows, heads, N, N).
        bias: relative-position bias, (heads, N, N).
        mask: shift mask (windows, N, N) or ``None``.
        v: values, (B * windows, heads, N, d).
    """
    bw, h, n, _ = attn.shape
    attn = attn + bias
    if mask is not None:
        windows = mask.shape[0]
        attn = (attn.reshape(-1, windows, h, n, n) + mask[None, :, None]).reshape(bw, h, n, n)
    out = attn.softmax(dim=-1) @ v
    return out.transpose(1, 2).reshape(bw, n, -1)


class SwinBlock(nn.Module):
    """Pre-norm block: (shifted) window attention, then the MLP, each with a residual; input (B, H, W, C).

    Args:
        dim: residual width.
        num_heads: heads.
        head_dim: per-head dim.
        mlp_hidden: MLP width.
        grid: token grid side.
        window: window side (at most ``grid``).
        shift: cyclic shift (0: none).
        qkv_bias: whether qkv has a bias.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int,
        mlp_hidden: int,
        grid: int,
        window: int,
        shift: int,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.grid, self.window, self.shift = grid, window, shift
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = WindowAttention(dim, num_heads, head_dim, window, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp_hidden)
        self.register_buffer("attn_mask", shift_mask(grid, window, shift), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + windowed(self.norm1(x), self.window, self.shift, lambda t: self.attn(t, self.attn_mask))
        return x + self.mlp(self.norm2(x))


def windowed(x: torch.Tensor, window: int, shift: int, attend: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Roll by ``-shift``, split into windows, apply ``attend`` to (B * windows, N, C), merge, roll back."""
    _, h, w, _ = x.shape
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    x = window_reverse(attend(window_partition(x, window)), window, h, w)
    return torch.roll(x, shifts=(shift, shift), dims=(1, 2)) if shift else x


class SwinStage(nn.Module):
    """Optional patch merging (every stage but the first), then blocks alternating plain and shifted windows."""

    def __init__(self, spec: ArchSpec, stage: int) -> None:
        super().__init__()
        dim = spec.stage_dims[stage]
        self.downsample = PatchMerging(spec.stage_dims[stage - 1], dim) if stage else nn.Identity()
        window, shift = spec.stage_window(stage)
        blocks = spec.stage_blocks(stage)
        self.blocks = nn.Sequential(
            *(
                SwinBlock(
                    dim,
                    spec.num_heads[i],
                    spec.head_dim[i],
                    spec.mlp_hidden[i],
                    spec.stage_grid(stage),
                    window,
                    shift if j % 2 else 0,
                    spec.qkv_bias,
                )
                for j, i in enumerate(blocks)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ClassifierHead(nn.Module):
    """Global average pooling over the token grid, then ``fc`` (timm key ``head.fc``)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(average_tokens(x))


def average_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) to (B, C), the mean token.

    NOTE: written as a sum times 1/(H*W): at opset 18 ``ReduceMean`` takes its axes as an input, and the
    exporter's down-conversion to opset 17 gives up on it (the file stays at 18); ``ReduceSum`` has had axes
    as an input since opset 13, so it converts.
    """
    return x.sum(dim=(1, 2)) * (1.0 / (x.shape[1] * x.shape[2]))


class OfbSwin(nn.Module):
    """Swin Transformer with per-stage widths and per-block heads, head dims and MLP widths.

    Args:
        spec: the architecture (``family == "swin"``); kept as ``self.spec``.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        if spec.family != "swin":
            raise ModelError(f"OfbSwin needs a swin spec, got family {spec.family!r}")
        self.spec = spec
        self.patch_embed = PatchEmbed(spec.patch_size, spec.in_chans, spec.embed_dim)
        self.layers = nn.Sequential(*(SwinStage(spec, s) for s in range(spec.num_stages)))
        self.norm = nn.LayerNorm(spec.stage_dims[-1], eps=LN_EPS)
        self.head = ClassifierHead(spec.stage_dims[-1], spec.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's Swin initialisation: truncated normal(0.02) for linear weights and bias tables, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, WindowAttention):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised last-stage tokens, shape (B, H, W, C)."""
        return self.norm(self.layers(self.patch_embed(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the average token."""
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
