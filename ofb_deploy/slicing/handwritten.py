"""Hand-written architectures: widths given as counts, units chosen by weight magnitude.

A user who knows the widths they want (say from a paper's table, or to try a uniform 50% cut) writes::

    {"embed_dim": 48, "blocks": [{"heads": 2, "head_dim": 16, "mlp_hidden": 64}, ...one per block]}

(a Swin gives ``"stage_dims": [48, 96, 192, 384]``, one width per stage, instead of ``embed_dim``)
and ``record_from_counts`` picks, from a dense checkpoint, the top units by L2 magnitude (heads ranked by the
sum over their channels, then channels within each kept head, as the OFB search ranks them; see
``importance.py``). The search result (``RunDir.arch_path``) has the same ``embed_dim`` and ``blocks`` widths, so
a copy of it, edited or not, is a valid width file: every other key is ignored. Every bad file fails with one
line naming the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import ConfigDict

from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.importance import attn_importance, mlp_importance, stage_importance, top_k
from ofb_deploy.slicing.record import BlockRecord, SliceRecord
from ofb_deploy.utils.config import ConfigModel, PositiveInt
from ofb_deploy.utils.io import read_json

# NOTE: extra keys are ignored so that the search result (indices, metrics, config) slices as it is


class BlockWidths(ConfigModel):
    """Widths of one block."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    heads: PositiveInt
    head_dim: PositiveInt
    mlp_hidden: PositiveInt


class Widths(ConfigModel):
    """A width file: the embed width (a Swin: ``stage_dims``) and one ``BlockWidths`` per block."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    SECTION: ClassVar[str] = "arch file"
    embed_dim: PositiveInt | None = None  # a ViT's; a Swin may repeat stage_dims[0] here
    stage_dims: list[PositiveInt] | None = None  # a Swin: one residual width per stage
    blocks: list[BlockWidths]


def _limit(value: int, limit: int, where: str, what: str) -> int:
    if value > limit:
        raise ConfigError(f"{where} = {value} is larger than the dense model's {limit} {what}")
    return value


def parse_counts(doc: Any, dense: ArchSpec, source: str = "arch file") -> dict[str, Any]:
    """Validate a width document (hand-written, or a search result) against the dense spec; return the counts.

    Args:
        doc: the parsed JSON.
        dense: the dense model's spec (limits).
        source: how errors name the document.
    """
    widths = Widths.from_dict(doc, section=f"{source}:")
    if len(widths.blocks) != dense.depth:
        raise ConfigError(f"{source}: 'blocks' needs {dense.depth} entries (one per block), got {len(widths.blocks)}")
    stages = _stage_counts(widths, dense, source)
    out = []
    for i, block in enumerate(widths.blocks):
        where = f"{source}: blocks[{i}]"
        out.append(
            {
                "heads": _limit(block.heads, dense.num_heads[i], f"{where}.heads", "heads"),
                "head_dim": _limit(block.head_dim, dense.head_dim[i], f"{where}.head_dim", "head dim"),
                "mlp_hidden": _limit(block.mlp_hidden, dense.mlp_hidden[i], f"{where}.mlp_hidden", "neurons"),
            }
        )
    extra = {"stage_dims": stages} if dense.family == "swin" else {}
    return {"embed_dim": stages[0], **extra, "blocks": out}


def _stage_counts(widths: Widths, dense: ArchSpec, source: str) -> list[int]:
    """The residual width of every stage: ``embed_dim`` (ViT) or ``stage_dims`` (Swin)."""
    if dense.family != "swin":
        if widths.embed_dim is None:
            raise ConfigError(f"{source}: embed_dim: missing")
        return [_limit(widths.embed_dim, dense.embed_dim, f"{source}: embed_dim", "channels")]
    if widths.stage_dims is None:
        raise ConfigError(f"{source}: stage_dims: missing (a Swin needs one residual width per stage)")
    if len(widths.stage_dims) != dense.num_stages:
        raise ConfigError(f"{source}: 'stage_dims' needs {dense.num_stages} entries (one per stage)")
    stages = [
        _limit(w, limit, f"{source}: stage_dims[{s}]", "channels")
        for s, (w, limit) in enumerate(zip(widths.stage_dims, dense.stage_dims, strict=True))
    ]
    if widths.embed_dim is not None and widths.embed_dim != stages[0]:
        raise ConfigError(f"{source}: embed_dim {widths.embed_dim} must equal stage_dims[0] ({stages[0]})")
    return stages


def record_from_counts(counts: dict[str, Any], dense_state: dict[str, torch.Tensor], dense: ArchSpec) -> SliceRecord:
    """Choose the kept units for count-only widths by weight magnitude.

    Args:
        counts: output of ``parse_counts``.
        dense_state: the dense weights.
        dense: the dense spec.
    """
    widths = counts.get("stage_dims", [counts["embed_dim"]])
    stages = tuple(top_k(stage_importance(dense_state, dense, s), w) for s, w in enumerate(widths))
    blocks = []
    for i, want in enumerate(counts["blocks"]):
        score = attn_importance(dense_state, dense, i)
        heads = top_k(score.sum(1), want["heads"])
        channels = tuple(top_k(score[h], want["head_dim"]) for h in heads)
        mlp = top_k(mlp_importance(dense_state, dense, i), want["mlp_hidden"])
        blocks.append(BlockRecord(heads, channels, mlp))
    return SliceRecord.from_stages(dense, stages, tuple(blocks), source="handwritten")


def load_counts(path: str | Path, dense: ArchSpec) -> dict[str, Any]:
    """Read and validate a width file (malformed JSON fails with one line)."""
    return parse_counts(read_json(path, "arch file"), dense, source=str(path))
