"""Width alignment: round each searched width up to a multiple of 8, 16 or 64 for faster GPU kernels.

Tensor-core GEMMs run fastest when every matrix dimension is a multiple of 8 (fp16) or 16 (int8), and odd widths
such as 204 channels lose more speed than their FLOPs save. ``align_record`` grows the embedding width (a Swin:
each stage's), each block's head dim and each MLP width to the next multiple (never past the dense width) by adding
the next most important units: by search scale first, then weight magnitude (the search gives every dropped unit
scale 0, so magnitude decides among those). Head counts are not changed.

An added unit keeps its search scale, normally 0, so it starts switched off: the aligned model computes the
searched function exactly except where added embedding channels enter the LayerNorm statistics, and
fine-tuning can train the new units.
"""

from __future__ import annotations

import dataclasses

import torch

from ofb_deploy.errors import ConfigError
from ofb_deploy.models.flops import count_macs
from ofb_deploy.models.importance import attn_importance, mlp_importance, stage_importance, top_k
from ofb_deploy.slicing.config import ALIGN_CHOICES
from ofb_deploy.slicing.record import BlockRecord, SliceRecord


def aligned_width(width: int, multiple: int, limit: int) -> int:
    """``width`` rounded up to a multiple of ``multiple``, capped at ``limit`` (the dense width)."""
    return min(-(-width // multiple) * multiple, limit)


def _scale_or_zero(scales: dict[str, torch.Tensor] | None, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    if not scales or key not in scales:
        return torch.zeros(shape, dtype=torch.float64)
    return scales[key].detach().to(torch.float64).reshape(shape)


def _align_block(
    rec: SliceRecord, state: dict[str, torch.Tensor], scales: dict | None, i: int, multiple: int
) -> BlockRecord:
    dense, block = rec.dense_arch, rec.blocks[i]
    d = aligned_width(block.head_dim, multiple, dense.head_dim[i])
    mag = attn_importance(state, dense, i)
    s_attn = _scale_or_zero(scales, f"scale.{dense.block_prefix(i)}attn", tuple(mag.shape))
    pairs = zip(block.head_idx, block.channel_idx, strict=True)
    channels = tuple(top_k(s_attn[h], d, chans, mag[h]) for h, chans in pairs)
    m = aligned_width(block.mlp_hidden, multiple, dense.mlp_hidden[i])
    mag_m = mlp_importance(state, dense, i)
    s_mlp = _scale_or_zero(scales, f"scale.{dense.block_prefix(i)}mlp", tuple(mag_m.shape))
    return BlockRecord(block.head_idx, channels, top_k(s_mlp, m, block.mlp_idx, mag_m))


def align_record(
    record: SliceRecord,
    dense_state: dict[str, torch.Tensor],
    multiple: int,
    scales: dict[str, torch.Tensor] | None = None,
) -> SliceRecord:
    """Round every width of ``record`` up to ``multiple`` (capped at the dense width).

    Args:
        record: the subnet to align.
        dense_state: dense weights (for magnitude importance).
        multiple: 1 (no change), 8, 16 or 64.
        scales: the search's ``scale.*`` tensors, ranked before magnitude; ``None`` ranks by magnitude only.
    """
    if multiple not in ALIGN_CHOICES:
        raise ConfigError(f"--align must be one of {', '.join(map(str, ALIGN_CHOICES))}, got {multiple}")
    if multiple == 1:
        return record
    dense = record.dense_arch
    stages = []
    for s, (kept, width) in enumerate(zip(record.stages, dense.stage_widths, strict=True)):
        s_e = _scale_or_zero(scales, f"scale.{dense.embed_name(s)}", (width,))
        mag = stage_importance(dense_state, dense, s)
        stages.append(top_k(s_e, aligned_width(len(kept), multiple, width), kept, mag))
    blocks = tuple(_align_block(record, dense_state, scales, i, multiple) for i in range(dense.depth))
    swin = {"stage_idx": tuple(stages)} if dense.family == "swin" else {}
    aligned = dataclasses.replace(record, embed_idx=stages[0], blocks=blocks, align=multiple, **swin)
    before, after = count_macs(record.spec).total, count_macs(aligned.spec).total
    info = dict(record.info)
    info["align"] = {
        "multiple": multiple,
        "flops_before": before,
        "flops_after": after,
        "flops_change_pct": round(100.0 * (after - before) / before, 3),
        "widths_before": _widths(record),
    }
    return dataclasses.replace(aligned, info=info)


def _widths(record: SliceRecord) -> dict:
    return {
        "embed_dim": len(record.embed_idx),
        **({"stage_dims": [len(idx) for idx in record.stage_idx]} if record.stage_idx else {}),
        "head_dim": [b.head_dim for b in record.blocks],
        "mlp_hidden": [b.mlp_hidden for b in record.blocks],
    }
