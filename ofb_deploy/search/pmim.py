"""PMIM: progressive masked image modelling during the OFB search (arXiv 2403.15835, sec. 3.4).

Random patch tokens are replaced by a learned mask token; a light decoder (a 1x1 conv from the alive embed
channels to patch*patch*C channels, then PixelShuffle) rebuilds the pixels from the patch tokens; the loss is
L1 on the masked pixels against a locally normalised target (per-pixel mean/std over a 47x47 window at 224 px,
scaled with the image). The mask ratio rises 5% -> 25% over the warm-up; the loss weight is detach(CE / L_mim)
so the term equals CE in value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WINDOW_AT_224 = 47


def local_window(img_size: int) -> int:
    """Odd normalisation window scaled from 47 px at 224 px (at least 3)."""
    w = max(3, round(WINDOW_AT_224 * img_size / 224))
    return w if w % 2 else w + 1


def local_normalize(images: torch.Tensor, window: int, eps: float = 1e-6) -> torch.Tensor:
    """(x - local mean) / local std per pixel and channel over a ``window`` square (borders: valid pixels only)."""
    pad = window // 2
    mean = F.avg_pool2d(images, window, stride=1, padding=pad, count_include_pad=False)
    sq = F.avg_pool2d(images * images, window, stride=1, padding=pad, count_include_pad=False)
    return (images - mean) / (sq - mean * mean).clamp_min(0).add(eps).sqrt()


def random_token_mask(batch: int, num_patches: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Bool (B, P) with exactly round(ratio * P) masked patches per image (at least one)."""
    count = max(1, round(ratio * num_patches))
    noise = torch.rand(batch, num_patches, generator=generator)
    order = torch.argsort(noise, dim=1)
    mask = torch.zeros(batch, num_patches, dtype=torch.bool)
    mask.scatter_(1, order[:, :count], True)
    return mask


class PixelDecoder(nn.Module):
    """1x1 conv (a per-token linear map) to patch*patch*C values, then PixelShuffle back to the image.

    Args:
        embed_dim: dense embed width (input channels are gathered to the alive ones).
        patch_size: patch size in pixels.
        in_chans: image channels.
    """

    def __init__(self, embed_dim: int, patch_size: int, in_chans: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(embed_dim, patch_size * patch_size * in_chans, kernel_size=1)

    def forward(self, patch_tokens: torch.Tensor, embed_idx: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = patch_tokens.shape
        g = int(round(n**0.5))
        weight = self.proj.weight if embed_idx is None else self.proj.weight.index_select(1, embed_idx)
        grid = patch_tokens.transpose(1, 2).reshape(b, -1, g, g)
        return F.pixel_shuffle(F.conv2d(grid, weight, self.proj.bias), self.patch_size)


def mim_loss(recon: torch.Tensor, target: torch.Tensor, token_mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Mean L1 over the pixels of masked patches.

    Args:
        recon: decoder output (B, C, H, W).
        target: locally normalised images (B, C, H, W).
        token_mask: bool (B, P) of masked patches.
        patch_size: patch size in pixels.
    """
    b, c, h, w = target.shape
    pix = token_mask.reshape(b, 1, h // patch_size, w // patch_size).to(recon.dtype)
    pix = pix.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
    err = (recon - target).abs() * pix
    return err.sum() / (pix.sum() * c).clamp_min(1.0)
