"""Physical slicing: cut the searched subnet out of the dense weights into a plain, smaller ``OfbViT``.

The OFB search (arXiv 2403.15835, sec. 3.3) ends with every mask frozen into a per-unit scale; the searched
model then computes

    x0 = s_e * (cat(cls, patch_embed(x)) + pos)          over the kept embed channels E (LayerNorms over E)
    q, k, v rows of kept (head, channel) times s_a[h, c]  softmax scale 1/sqrt(d)   (d: dense head dim)
    fc1 rows of kept neurons times s_m                    before the GELU

Every scale multiplies a linear map's output, so it folds into that map's rows (and bias). The attention
scale is the one non-linear catch: the sliced ``Attention`` uses ``1/sqrt(d')`` (SDPA default, what ONNX and
TensorRT fuse), and ``(c q) . k / sqrt(d') = q . k / sqrt(d)`` for ``c = sqrt(d'/d)``, so ``c`` folds into the
q rows too. The result has no masks, gathers or index ops; only the folding runs index ops, once, here.

A Swin (``search/swin_supernet.py``) keeps channels E_s per stage: its stage scale multiplies the output of the
patch embedding's LayerNorm (folded into that norm's affine weight and bias) or of a patch merging's projection
(folded into its rows); a merging reads the kept E_{s-1} of each of its four token groups (columns
``g * C + c``), and each block's relative-position bias table keeps the columns of its kept heads. The shift
mask depends on no width.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ofb_deploy.errors import ModelError
from ofb_deploy.models.registry import build_model
from ofb_deploy.slicing.record import SliceRecord

SCALE_PREFIX = "scale."


def split_scales(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a searched state dict into (model weights, ``scale.*`` mask scales)."""
    weights = {k: v for k, v in state.items() if not k.startswith(SCALE_PREFIX)}
    scales = {k: v for k, v in state.items() if k.startswith(SCALE_PREFIX)}
    return weights, scales


def _scale(scales: dict[str, torch.Tensor] | None, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    if scales is None or key not in scales:
        if scales:  # some scales given but not this one: a broken search output, not "no scales"
            raise ModelError(f"searched weights have no {key}")
        return torch.ones(shape, dtype=torch.float64)
    value = scales[key].detach().to(torch.float64)
    if tuple(value.shape) != shape:
        raise ModelError(f"{key} has shape {tuple(value.shape)}, the dense model needs {shape}")
    return value


def _check_dense(state: dict[str, torch.Tensor], record: SliceRecord) -> None:
    own = build_model(record.dense_arch).state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ModelError(f"dense weights lack {missing[:3]} of {record.dense_arch.base_model}")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ModelError(f"dense weight {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")


def _attn_rows(record: SliceRecord, i: int) -> torch.Tensor:
    """Dense indices into one of q/k/v (``h * d + c``) of the kept (head, channel) pairs, head-major."""
    d = record.dense_arch.head_dim[i]
    block = record.blocks[i]
    return torch.tensor([h * d + c for h, chans in zip(block.head_idx, block.channel_idx, strict=True) for c in chans])


def _fold_block(
    out: dict[str, torch.Tensor],
    w: dict[str, torch.Tensor],
    record: SliceRecord,
    scales: dict[str, torch.Tensor] | None,
    i: int,
) -> None:
    dense, block, p = record.dense_arch, record.blocks[i], record.dense_arch.block_prefix(i)
    e = torch.tensor(record.stages[dense.block_stage[i]])
    inner = dense.num_heads[i] * dense.head_dim[i]
    rows = _attn_rows(record, i)
    s_attn = _scale(scales, f"{SCALE_PREFIX}{p}attn", (dense.num_heads[i], dense.head_dim[i])).reshape(-1)[rows]
    # q rows also carry sqrt(d'/d): the sliced SDPA divides by sqrt(d'), the searched model by sqrt(d)
    q_fix = math.sqrt(block.head_dim / dense.head_dim[i])
    # NOTE: a kept (head, channel) with scale 0 (a unit added by --align) adds nothing through q.k as long as
    # its q row is zero, so its k row keeps the raw weight: otherwise q and k would both be zero and neither
    # could get a gradient when fine-tuning revives the unit.
    s_key = torch.where(s_attn == 0, torch.ones_like(s_attn), s_attn)
    row_scale = torch.cat([s_attn * q_fix, s_key, s_attn])
    qkv_rows = torch.cat([rows, rows + inner, rows + 2 * inner])
    out[p + "attn.qkv.weight"] = w[p + "attn.qkv.weight"][qkv_rows][:, e] * row_scale[:, None]
    if p + "attn.qkv.bias" in w:
        out[p + "attn.qkv.bias"] = w[p + "attn.qkv.bias"][qkv_rows] * row_scale
    out[p + "attn.proj.weight"] = w[p + "attn.proj.weight"][e][:, rows]
    out[p + "attn.proj.bias"] = w[p + "attn.proj.bias"][e]
    table = p + "attn.relative_position_bias_table"
    if table in w:  # Swin: one bias column per head
        out[table] = w[table][:, list(block.head_idx)]
    m = torch.tensor(block.mlp_idx)
    s_mlp = _scale(scales, f"{SCALE_PREFIX}{p}mlp", (dense.mlp_hidden[i],))[m]
    out[p + "mlp.fc1.weight"] = w[p + "mlp.fc1.weight"][m][:, e] * s_mlp[:, None]
    out[p + "mlp.fc1.bias"] = w[p + "mlp.fc1.bias"][m] * s_mlp
    out[p + "mlp.fc2.weight"] = w[p + "mlp.fc2.weight"][e][:, m]
    out[p + "mlp.fc2.bias"] = w[p + "mlp.fc2.bias"][e]
    for norm in ("norm1", "norm2"):
        for part in ("weight", "bias"):
            out[f"{p}{norm}.{part}"] = w[f"{p}{norm}.{part}"][e]


def sliced_state_dict(
    dense_state: dict[str, torch.Tensor],
    record: SliceRecord,
    scales: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The subnet's state dict: kept rows/columns of the dense weights with every scale folded in.

    Args:
        dense_state: dense-shaped weights (timm keys).
        record: kept indices.
        scales: ``scale.embed`` (Swin: ``scale.layers.{s}.embed``) and ``scale.<block prefix>attn``/``mlp``;
            ``None`` means all ones.
    """
    _check_dense(dense_state, record)
    dtype = dense_state["patch_embed.proj.weight"].dtype
    # NOTE: fold in float64 and round once, so the folded weights are as close as fp32 allows
    w = {k: v.detach().cpu().to(torch.float64) for k, v in dense_state.items()}
    out = (
        _fold_swin_stages(w, record, scales)
        if record.dense_arch.family == "swin"
        else _fold_vit_ends(w, record, scales)
    )
    for i in range(record.dense_arch.depth):
        _fold_block(out, w, record, scales, i)
    return {k: v.to(dtype).contiguous() for k, v in out.items()}


def _stage_scale(scales: dict[str, torch.Tensor] | None, record: SliceRecord, stage: int) -> torch.Tensor:
    """The kept channels' scales of ``stage``."""
    dense = record.dense_arch
    key = f"{SCALE_PREFIX}{dense.embed_name(stage)}"
    return _scale(scales, key, (dense.stage_widths[stage],))[torch.tensor(record.stages[stage])]


def _fold_vit_ends(
    w: dict[str, torch.Tensor], record: SliceRecord, scales: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Patch embedding, class token, position embedding (times the embed scale), final norm and head of a ViT."""
    e, s_e = torch.tensor(record.embed_idx), _stage_scale(scales, record, 0)
    return {
        "patch_embed.proj.weight": w["patch_embed.proj.weight"][e] * s_e[:, None, None, None],
        "patch_embed.proj.bias": w["patch_embed.proj.bias"][e] * s_e,
        "cls_token": w["cls_token"][..., e] * s_e,
        "pos_embed": w["pos_embed"][..., e] * s_e,
        "norm.weight": w["norm.weight"][e],
        "norm.bias": w["norm.bias"][e],
        "head.weight": w["head.weight"][:, e],
        "head.bias": w["head.bias"],
    }


def _fold_swin_stages(
    w: dict[str, torch.Tensor], record: SliceRecord, scales: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Patch embedding (its norm times stage 0's scale), patch mergings (rows times the stage scale, columns
    the previous stage's kept channels of each token group), final norm and head of a Swin."""
    stages = [torch.tensor(idx) for idx in record.stages]
    s_0 = _stage_scale(scales, record, 0)
    out = {
        "patch_embed.proj.weight": w["patch_embed.proj.weight"][stages[0]],
        "patch_embed.proj.bias": w["patch_embed.proj.bias"][stages[0]],
        "patch_embed.norm.weight": w["patch_embed.norm.weight"][stages[0]] * s_0,
        "patch_embed.norm.bias": w["patch_embed.norm.bias"][stages[0]] * s_0,
    }
    for s in range(1, len(stages)):
        p, width = f"layers.{s}.downsample.", record.dense_arch.stage_widths[s - 1]
        cols = torch.cat([stages[s - 1] + g * width for g in range(4)])
        out[p + "norm.weight"] = w[p + "norm.weight"][cols]
        out[p + "norm.bias"] = w[p + "norm.bias"][cols]
        out[p + "reduction.weight"] = (
            w[p + "reduction.weight"][stages[s]][:, cols] * _stage_scale(scales, record, s)[:, None]
        )
    last = stages[-1]
    out.update({"norm.weight": w["norm.weight"][last], "norm.bias": w["norm.bias"][last]})
    out.update({"head.fc.weight": w["head.fc.weight"][:, last], "head.fc.bias": w["head.fc.bias"]})
    return out


def slice_subnet(
    dense_state: dict[str, torch.Tensor],
    arch: dict[str, Any] | SliceRecord,
    scales: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Build the plain dense subnet that computes what the searched model (final masks) computes.

    Args:
        dense_state: dense-shaped weights (``scale.*`` entries, if present, are used when ``scales`` is None).
        arch: the search result document (``RunDir.arch_path``) or a ``SliceRecord``.
        scales: frozen mask scales (``scale.*`` keys); ``None`` takes them from ``dense_state`` or uses ones.
    """
    record = arch if isinstance(arch, SliceRecord) else SliceRecord.from_arch(arch)
    weights, found = split_scales(dense_state)
    if scales is None:
        scales = found or None
    model = build_model(record.spec)
    model.load_state_dict(sliced_state_dict(weights, record, scales))
    return model.eval()
