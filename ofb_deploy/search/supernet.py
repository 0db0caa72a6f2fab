"""The OFB supernet: a dense model run through a masked forward over its alive units only.

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

``SupernetBase`` holds what every family shares: the masks (one embed mask per stage, a head mask and an MLP
mask per block), the gathered-and-folded qkv, projection and MLP of a block, the soft MACs and the PMIM
decoder. ``OfbSupernet`` is the ViT; ``search/swin_supernet.py`` the Swin (``search/build.py`` picks one).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from ofb_deploy.models.flops import model_macs
from ofb_deploy.models.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates
from ofb_deploy.models.vit import LN_EPS, OfbViT
from ofb_deploy.search.masks import BiMask, ChannelMask, HeadMask
from ofb_deploy.search.pmim import PixelDecoder


def _take(weight: torch.Tensor, dim: int, idx: torch.Tensor | None) -> torch.Tensor:
    return weight if idx is None else weight.index_select(dim, idx)


class SupernetBase(nn.Module, ABC):
    """Masks and masked block pieces shared by every family's supernet.

    Subclasses set ``model``, ``spec``, ``mask_token`` and ``ln_eps``, call ``_init_block_masks`` and define the
    abstract members: the stage masks, block lookup, the forward pieces and the PMIM reconstruction.
    """

    ln_eps = LN_EPS

    def _init_block_masks(self, space: SpaceConfig) -> None:
        spec = self.spec
        self.attn_masks = nn.ModuleList(
            HeadMask(f"{spec.block_prefix(i)}attn", h, d, attn_candidates(h, d, space))
            for i, (h, d) in enumerate(zip(spec.num_heads, spec.head_dim, strict=True))
        )
        self.mlp_masks = nn.ModuleList(
            ChannelMask(f"{spec.block_prefix(i)}mlp", m, mlp_candidates(m, space), "mlp")
            for i, m in enumerate(spec.mlp_hidden)
        )
        self.lam = 1.0  # lambda(t) of the bi-mask; set by the search loop
        self.mask_writes = False  # mask every residual write by the stage's embed survival (``write_mask``)

    # -- bookkeeping ----------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def stage_masks(self) -> list[ChannelMask]:
        """The embed mask of each stage (one for a ViT)."""

    @abstractmethod
    def block(self, i: int) -> nn.Module:
        """Dense block ``i`` (global index)."""

    @abstractmethod
    def forward_features(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised features over the alive channels; ``token_mask`` marks PMIM-masked patches."""

    @abstractmethod
    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from ``forward_features``' output."""

    @abstractmethod
    def reconstruct(self, decoder: PixelDecoder, feats: torch.Tensor) -> torch.Tensor:
        """PMIM: the image rebuilt by ``decoder`` from ``forward_features``' output."""

    def stage_modules(self, stage: int) -> list[tuple[int, BiMask]]:
        """(block, mask) of the attention then MLP modules of ``stage``'s blocks: the modules whose cost that
        stage's width sets (``cost.py``, ``finalize.py``)."""
        blocks = self.spec.stage_blocks(stage)
        return [(i, self.attn_masks[i]) for i in blocks] + [(i, self.mlp_masks[i]) for i in blocks]

    def masks(self) -> list[BiMask]:
        """All bi-masks: the stage embeds, then attention and MLP of each block."""
        return [*self.stage_masks, *self.attn_masks, *self.mlp_masks]

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
        return model_macs(
            self.spec,
            stage_widths=[m.expected_width() for m in self.stage_masks],
            attn_widths=[m.expected_width() for m in self.attn_masks],
            mlp_hiddens=[m.expected_width() for m in self.mlp_masks],
        )

    def search_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(model weights + importance scores, alive alpha logits)."""
        weights = list(self.model.parameters()) + [m.score for m in self.masks()]
        alphas = [m.alpha for m in self.masks() if m.alpha is not None]
        return weights, alphas

    @staticmethod
    def alive(mask: ChannelMask) -> torch.Tensor | None:
        """Gather index of a channel mask's alive units, ``None`` while all are alive."""
        return None if mask.full else mask.idx

    # -- masked pieces of a block ---------------------------------------------------------------------------
    def _norm(self, x: torch.Tensor, norm: nn.LayerNorm, e: torch.Tensor | None) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), _take(norm.weight, 0, e), _take(norm.bias, 0, e), self.ln_eps)

    def _qkv(self, i: int, x: torch.Tensor, e: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Masked q, k, v of block ``i`` over its alive (head, channel) units, each (B, heads, N, d)."""
        attn, mask = self.block(i).attn, self.attn_masks[i]
        rows = None
        if not mask.full:
            hd = mask.alive.numel()
            rows = torch.cat([mask.flat_idx, mask.flat_idx + hd, mask.flat_idx + 2 * hd])
        # NOTE: the mask on q, k and v rows is folded into the qkv weight and bias rows (same numbers, less work)
        scale = mask.mask(self.lam).reshape(-1).repeat(3)
        weight = _take(_take(attn.qkv.weight, 0, rows), 1, e) * scale[:, None]
        bias = None if attn.qkv.bias is None else _take(attn.qkv.bias, 0, rows) * scale
        b, n, _ = x.shape
        qkv = F.linear(x, weight, bias).reshape(b, n, 3, mask.heads, mask.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def write_mask(self, stage: int) -> torch.Tensor | None:
        """What multiplies every write into ``stage``'s residual stream: its embed mask's survival V while that
        mask is open and ``mask_writes`` is on, else ``None`` (a final embed is narrowed and writes whole).

        OFB masks the embed only where the stream starts, so attention and MLP outputs refill the channels a
        narrow embed drops and the loss never sees the narrow stream; masking every write lets it (docs/method.md).
        """
        mask = self.stage_masks[stage]
        return mask.survival() if self.mask_writes and not mask.final else None

    @staticmethod
    def _out(linear: nn.Linear, e: torch.Tensor | None, cols: torch.Tensor | None, write: torch.Tensor | None):
        """(weight, bias) of a layer writing into the residual stream: alive rows and columns, rows times ``write``."""
        weight, bias = _take(_take(linear.weight, 0, e), 1, cols), _take(linear.bias, 0, e)
        if write is None:
            return weight, bias
        return weight * write[:, None], bias * write

    def _proj(
        self, i: int, out: torch.Tensor, e: torch.Tensor | None, write: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Output projection of block ``i`` from its alive attention units to the alive embed channels."""
        attn, mask = self.block(i).attn, self.attn_masks[i]
        return F.linear(out, *self._out(attn.proj, e, None if mask.full else mask.flat_idx, write))

    def _mlp(self, i: int, x: torch.Tensor, e: torch.Tensor | None, write: torch.Tensor | None = None) -> torch.Tensor:
        mlp, mask = self.block(i).mlp, self.mlp_masks[i]
        idx = None if mask.full else mask.idx
        scale = mask.mask(self.lam)  # folded into the fc1 rows: fc1 output times the mask, before the GELU
        weight = _take(_take(mlp.fc1.weight, 0, idx), 1, e) * scale[:, None]
        hidden = F.gelu(F.linear(x, weight, _take(mlp.fc1.bias, 0, idx) * scale))
        return F.linear(hidden, *self._out(mlp.fc2, e, idx, write))

    # -- PMIM -----------------------------------------------------------------------------------------------
    def make_decoder(self) -> PixelDecoder:
        """The PMIM pixel decoder from the last stage's features back to the image."""
        spec = self.spec
        stride = spec.img_size // spec.stage_grid(spec.num_stages - 1)
        return PixelDecoder(spec.stage_widths[-1], stride, spec.in_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class OfbSupernet(SupernetBase):
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
        self.embed_mask = ChannelMask(
            spec.embed_name(0), spec.embed_dim, embed_candidates(spec.embed_dim, space), "embed"
        )
        self._init_block_masks(space)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, spec.embed_dim))
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def stage_masks(self) -> list[ChannelMask]:
        return [self.embed_mask]

    def block(self, i: int) -> nn.Module:
        return self.model.blocks[i]

    # -- forward --------------------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
        """Masked token input x0, shape (B, N, D_alive); ``token_mask`` (B, N-1) marks PMIM-masked patches."""
        m, e = self.model, self.alive(self.embed_mask)
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

    def _attention(self, i: int, x: torch.Tensor, e: torch.Tensor | None, write: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self._qkv(i, x, e)
        # the softmax scale stays 1/sqrt(d_dense), passed explicitly: SDPA's default would use the narrowed dim
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(self.block(i).attn.head_dim))
        b, h, n, d = out.shape
        return self._proj(i, out.transpose(1, 2).reshape(b, n, h * d), e, write)

    def forward_features(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised tokens over the alive embed channels, shape (B, N, D_alive)."""
        e, write = self.alive(self.embed_mask), self.write_mask(0)
        x = self.embed(x, token_mask)
        for i, block in enumerate(self.model.blocks):
            x = x + self._attention(i, self._norm(x, block.norm1, e), e, write)
            x = x + self._mlp(i, self._norm(x, block.norm2, e), e, write)
        return self._norm(x, self.model.norm, e)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Class-token logits."""
        e = self.alive(self.embed_mask)
        return F.linear(feats[:, 0], _take(self.model.head.weight, 1, e), self.model.head.bias)

    def reconstruct(self, decoder: PixelDecoder, feats: torch.Tensor) -> torch.Tensor:
        """PMIM: pixels rebuilt from the patch tokens (the class token left out)."""
        return decoder(feats[:, 1:], self.alive(self.embed_mask))
