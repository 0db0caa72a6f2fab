"""The OFB supernet: a dense ``OfbViT`` run through a masked forward over its alive units only.

The dense model's parameters stay dense-shaped for the whole search (so checkpoints, resume and the output keep
timm's keys and shapes). Each step gathers only the alive rows/columns of every weight (``index_select`` is
differentiable, so dropped units simply get no gradient) and multiplies the bi-mask values in where OFB puts
them (arXiv 2403.15835, sec. 3.2):

* embed mask on the token input: x0 = M_embed * (cat(cls, patch_embed(x) or mask token) + pos_embed);
  LayerNorms normalise over the alive embed channels only, as the sliced model will;
* attention mask on q, k and v rows of each (head, channel) after the qkv projection; the softmax scale stays
  1/sqrt(d_dense) (passed to SDPA explicitly: timm's fused path would use the narrowed dim);
* MLP mask on the fc1 output, before the GELU.

With every mask final this is exactly the forward the searched model has (``load_searched_model``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ofb_deploy.models.flops import macs_from_widths
from ofb_deploy.models.vit import LN_EPS, OfbViT
from ofb_deploy.search.masks import BiMask, ChannelMask, HeadMask
from ofb_deploy.search.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates


def _take(weight: torch.Tensor, dim: int, idx: torch.Tensor | None) -> torch.Tensor:
    return weight if idx is None else weight.index_select(dim, idx)


class OfbSupernet(nn.Module):
    """Dense ViT plus one bi-mask per searchable module.

    Args:
        model: the dense model (its parameters are trained in place).
        space: candidate grid settings.
    """

    def __init__(self, model: OfbViT, space: SpaceConfig | None = None) -> None:
        super().__init__()
        space = space or SpaceConfig()
        spec = model.spec
        self.model = model
        self.spec = spec
        self.embed_mask = ChannelMask("embed", spec.embed_dim, embed_candidates(spec.embed_dim, space), "embed")
        self.attn_masks = nn.ModuleList(
            HeadMask(f"blocks.{i}.attn", h, d, attn_candidates(h, d, space))
            for i, (h, d) in enumerate(zip(spec.num_heads, spec.head_dim, strict=True))
        )
        self.mlp_masks = nn.ModuleList(
            ChannelMask(f"blocks.{i}.mlp", m, mlp_candidates(m, space), "mlp") for i, m in enumerate(spec.mlp_hidden)
        )
        self.mask_token = nn.Parameter(torch.zeros(1, 1, spec.embed_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.lam = 1.0  # lambda(t) of the bi-mask; set by the search loop

    # -- bookkeeping ----------------------------------------------------------------------------------------
    def masks(self) -> list[BiMask]:
        """All bi-masks: embed, then attention and MLP of each block."""
        return [self.embed_mask, *self.attn_masks, *self.mlp_masks]

    def refresh(self) -> None:
        """Recompute every mask's gather indices (after loading or moving devices)."""
        for mask in self.masks():
            mask.refresh()

    @property
    def all_final(self) -> bool:
        """True once every module has one candidate left."""
        return all(m.final for m in self.masks())

    def soft_macs(self) -> torch.Tensor | float:
        """MACs per image at the expected widths (differentiable in alpha; the FLOPs loss uses it)."""
        spec = self.spec
        return macs_from_widths(
            num_tokens=spec.num_tokens,
            patch_pixels=spec.in_chans * spec.patch_size**2,
            num_classes=spec.num_classes,
            embed=self.embed_mask.expected_width(),
            attn_widths=[m.expected_width() for m in self.attn_masks],
            mlp_hiddens=[m.expected_width() for m in self.mlp_masks],
        )

    def search_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(model weights + importance scores, alive alpha logits)."""
        weights = list(self.model.parameters()) + [m.score for m in self.masks()]
        alphas = [m.alpha for m in self.masks() if m.alpha is not None]
        return weights, alphas

    # -- forward --------------------------------------------------------------------------------------------
    def _norm(self, x: torch.Tensor, norm: nn.LayerNorm, e: torch.Tensor | None) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), _take(norm.weight, 0, e), _take(norm.bias, 0, e), LN_EPS)

    def embed(self, x: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
        """Masked token input x0, shape (B, N, D_alive); ``token_mask`` (B, N-1) marks PMIM-masked patches."""
        m, e = self.model, (None if self.embed_mask.full else self.embed_mask.idx)
        scale = self.embed_mask.mask(self.lam)
        # NOTE: M * (cat(cls, tokens) + pos) is folded into the conv, tokens and pos (parameter-sized products,
        # not activation-sized ones): the same numbers as masking x0, at a fraction of the cost
        proj = m.patch_embed.proj
        weight = _take(proj.weight, 0, e) * scale[:, None, None, None]
        tokens = F.conv2d(x, weight, _take(proj.bias, 0, e) * scale, stride=proj.stride).flatten(2).transpose(1, 2)
        if token_mask is not None:
            fill = (_take(self.mask_token, 2, e) * scale).to(tokens.dtype)
            tokens = torch.where(token_mask[..., None], fill, tokens)
        cls = (_take(m.cls_token, 2, e) * scale).expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1) + _take(m.pos_embed, 2, e) * scale

    def _attention(self, i: int, x: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
        attn, mask = self.model.blocks[i].attn, self.attn_masks[i]
        rows = None
        if not mask.full:
            hd = mask.alive.numel()
            rows = torch.cat([mask.flat_idx, mask.flat_idx + hd, mask.flat_idx + 2 * hd])
        # NOTE: the mask on q, k and v rows is folded into the qkv weight and bias rows (same numbers, less work)
        scale = mask.mask(self.lam).reshape(-1).repeat(3)
        weight = _take(_take(attn.qkv.weight, 0, rows), 1, e) * scale[:, None]
        bias = None if attn.qkv.bias is None else _take(attn.qkv.bias, 0, rows) * scale
        b, n, _ = x.shape
        h, d = mask.heads, mask.head_dim
        qkv = F.linear(x, weight, bias).reshape(b, n, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(attn.head_dim))
        out = out.transpose(1, 2).reshape(b, n, h * d)
        cols = None if mask.full else mask.flat_idx
        return F.linear(out, _take(_take(attn.proj.weight, 0, e), 1, cols), _take(attn.proj.bias, 0, e))

    def _mlp(self, i: int, x: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
        mlp, mask = self.model.blocks[i].mlp, self.mlp_masks[i]
        idx = None if mask.full else mask.idx
        scale = mask.mask(self.lam)  # folded into the fc1 rows: fc1 output times the mask, before the GELU
        weight = _take(_take(mlp.fc1.weight, 0, idx), 1, e) * scale[:, None]
        hidden = F.gelu(F.linear(x, weight, _take(mlp.fc1.bias, 0, idx) * scale))
        return F.linear(hidden, _take(_take(mlp.fc2.weight, 0, e), 1, idx), _take(mlp.fc2.bias, 0, e))

    def forward_features(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised tokens over the alive embed channels, shape (B, N, D_alive)."""
        e = None if self.embed_mask.full else self.embed_mask.idx
        x = self.embed(x, token_mask)
        for i, block in enumerate(self.model.blocks):
            x = x + self._attention(i, self._norm(x, block.norm1, e), e)
            x = x + self._mlp(i, self._norm(x, block.norm2, e), e)
        return self._norm(x, self.model.norm, e)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Class-token logits."""
        e = None if self.embed_mask.full else self.embed_mask.idx
        return F.linear(feats[:, 0], _take(self.model.head.weight, 1, e), self.model.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
