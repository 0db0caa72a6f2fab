"""The OFB supernet of a Swin Transformer: one embed mask per stage, masked (shifted-)window attention.

OFB's paper reports Swin results without releasing the code; the units are the ViT's (arXiv 2403.15835,
sec. 3; ``shared/docs/OFB.md``: "same unit types per block, embed width per stage"):

* per stage s, an embed mask over the stage's residual channels E_s. It multiplies the stage input where that
  input is made: the output of the patch embedding's LayerNorm (stage 0) or of the patch merging's projection
  (later stages). Every LayerNorm of the stage normalises over the alive channels of E_s only, as the sliced
  model will. A patch merging reads the alive channels of E_{s-1} from each of its four tokens, so the
  coupling between two stages is just a gather: stage s-1's width sets the merging's input, stage s's its
  output;
* per block, the (head, channel) mask on q, k and v rows and the MLP mask on fc1 rows, as in the ViT. The
  relative-position bias table is gathered with the alive heads; the shift mask does not depend on any width
  and is the dense block's own buffer. The softmax scale stays 1/sqrt(d_dense).

PMIM masks patch-embedding tokens (a learned token replaces them after the stem's LayerNorm, as SimMIM does
for Swin) and the decoder rebuilds the pixels from the last stage's grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ofb_deploy.models.space import SpaceConfig, embed_candidates
from ofb_deploy.models.swin import LN_EPS, OfbSwin, average_tokens, merge_groups, window_softmax_v, windowed
from ofb_deploy.search.masks import ChannelMask
from ofb_deploy.search.pmim import PixelDecoder
from ofb_deploy.search.supernet import SupernetBase, _take


class SwinSupernet(SupernetBase):
    """Dense Swin plus one bi-mask per stage embed, per block attention and per block MLP.

    Args:
        model: the dense model (its parameters are trained in place).
        space: candidate grid settings.
    """

    ln_eps = LN_EPS

    def __init__(self, model: OfbSwin, space: SpaceConfig | None = None) -> None:
        super().__init__()
        space = space or SpaceConfig()
        spec = model.spec
        self.model = model
        self.spec = spec
        self.embed_masks = nn.ModuleList(
            ChannelMask(spec.embed_name(s), width, embed_candidates(width, space), "embed")
            for s, width in enumerate(spec.stage_dims)
        )
        self._init_block_masks(space)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, spec.embed_dim))
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def stage_masks(self) -> list[ChannelMask]:
        return list(self.embed_masks)

    def block(self, i: int) -> nn.Module:
        stage = self.spec.block_stage[i]
        return self.model.layers[stage].blocks[i - self.spec.stage_blocks(stage).start]

    # -- forward --------------------------------------------------------------------------------------------
    def stem(self, x: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
        """Masked stage-0 input (B, H, W, E_0 alive); ``token_mask`` (B, H*W) marks PMIM-masked patches."""
        pe, mask = self.model.patch_embed, self.embed_masks[0]
        e, scale = self.alive(mask), mask.mask(self.lam)
        tokens = F.conv2d(x, _take(pe.proj.weight, 0, e), _take(pe.proj.bias, 0, e), stride=pe.proj.stride)
        tokens = tokens.permute(0, 2, 3, 1)
        # the stage mask multiplies the LayerNorm's output: folded into its affine weight and bias
        norm_w, norm_b = _take(pe.norm.weight, 0, e) * scale, _take(pe.norm.bias, 0, e) * scale
        tokens = F.layer_norm(tokens, (tokens.shape[-1],), norm_w, norm_b, self.ln_eps)
        if token_mask is not None:
            fill = (_take(self.mask_token, 2, e) * scale).to(tokens.dtype)
            tokens = torch.where(token_mask.reshape(tokens.shape[:3])[..., None], fill, tokens)
        return tokens

    def merge(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """Masked patch merging into ``stage``: alive E_{s-1} of 4 tokens -> alive E_s, times the stage mask."""
        down, prev, mask = self.model.layers[stage].downsample, self.embed_masks[stage - 1], self.embed_masks[stage]
        cols = None
        if not prev.full:  # channel g * C + c of the 4C concatenation is channel c of token g
            width = prev.alive.numel()
            cols = torch.cat([prev.idx + g * width for g in range(4)])
        x = self._norm(merge_groups(x), down.norm, cols)
        weight = _take(_take(down.reduction.weight, 0, self.alive(mask)), 1, cols) * mask.mask(self.lam)[:, None]
        return F.linear(x, weight)

    def _attention(self, i: int, x: torch.Tensor, e: torch.Tensor | None, write: torch.Tensor | None) -> torch.Tensor:
        block, mask = self.block(i), self.attn_masks[i]
        heads = None if mask.full else mask.head_idx
        # (N, N, heads) gathered to the alive heads: the bias table is sliced with its heads
        bias = _take(block.attn.position_bias(), 2, heads).permute(2, 0, 1)
        dense_scale = block.attn.head_dim**-0.5

        def attend(tokens: torch.Tensor) -> torch.Tensor:
            q, k, v = self._qkv(i, tokens, e)
            out = window_softmax_v((q * dense_scale) @ k.transpose(-2, -1), bias, block.attn_mask, v)
            return self._proj(i, out, e, write)

        return windowed(x, block.window, block.shift, attend)

    def forward_features(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised last-stage tokens over the alive channels, shape (B, H, W, E_last alive)."""
        x = self.stem(x, token_mask)
        for stage in range(self.spec.num_stages):
            e, write = self.alive(self.embed_masks[stage]), self.write_mask(stage)
            if stage:
                x = self.merge(stage, x)
            for i in self.spec.stage_blocks(stage):
                block = self.block(i)
                x = x + self._attention(i, self._norm(x, block.norm1, e), e, write)
                x = x + self._mlp(i, self._norm(x, block.norm2, e), e, write)
        return self._norm(x, self.model.norm, self.alive(self.embed_masks[-1]))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits of the average token."""
        fc = self.model.head.fc
        return F.linear(average_tokens(feats), _take(fc.weight, 1, self.alive(self.embed_masks[-1])), fc.bias)

    def reconstruct(self, decoder: PixelDecoder, feats: torch.Tensor) -> torch.Tensor:
        """PMIM: pixels rebuilt from the last stage's token grid."""
        return decoder(feats.flatten(1, 2), self.alive(self.embed_masks[-1]))
