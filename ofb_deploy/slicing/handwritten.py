"""Hand-written architectures: widths given as counts, units chosen by weight magnitude.

A user who knows the widths they want (say from a paper's table, or to try a uniform 50% cut) writes::

    {"embed_dim": 48, "blocks": [{"heads": 2, "head_dim": 16, "mlp_hidden": 64}, ...one per block]}

(a Swin gives ``"stage_dims": [48, 96, 192, 384]``, one width per stage, instead of ``embed_dim``)
and ``record_from_counts`` picks, from a dense checkpoint, the top units by L2 magnitude (heads ranked by the
sum over their channels, then channels within each kept head, as the OFB search ranks them; see
``importance.py``). Every bad file fails with one line naming the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.slicing.importance import attn_importance, mlp_importance, stage_importance, top_k
from ofb_deploy.slicing.record import BlockRecord, SliceRecord
from ofb_deploy.utils.io import read_json

TOP_KEYS = ("embed_dim", "blocks")
SWIN_KEYS = ("stage_dims", "blocks")  # plus an optional embed_dim, which must then be stage_dims[0]
BLOCK_KEYS = ("heads", "head_dim", "mlp_hidden")


def _count(value: Any, where: str, limit: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{where} must be positive, got {value}")
    if value > limit:
        raise ConfigError(f"{where} = {value} is larger than the dense model's {limit} {what}")
    return value


def _check_keys(obj: Any, allowed: tuple[str, ...], where: str, optional: tuple[str, ...] = ()) -> None:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(allowed) - set(optional))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed + optional)}")
    missing = [k for k in allowed if k not in obj]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")


def parse_counts(doc: Any, dense: ArchSpec, source: str = "arch file") -> dict[str, Any]:
    """Validate a count-only width document against the dense spec; return it normalised.

    Args:
        doc: the parsed JSON.
        dense: the dense model's spec (limits).
        source: how errors name the document.
    """
    stages = _stage_counts(doc, dense, source)
    blocks = doc["blocks"]
    if not isinstance(blocks, list) or len(blocks) != dense.depth:
        got = len(blocks) if isinstance(blocks, list) else type(blocks).__name__
        raise ConfigError(f"{source}: 'blocks' needs {dense.depth} entries (one per block), got {got}")
    out = []
    for i, block in enumerate(blocks):
        where = f"{source}: blocks[{i}]"
        _check_keys(block, BLOCK_KEYS, where)
        heads = block["heads"]
        if isinstance(heads, int) and not isinstance(heads, bool) and heads > dense.num_heads[i]:
            raise ConfigError(f"{where}: {heads} heads, but the dense block has only {dense.num_heads[i]}")
        out.append(
            {
                "heads": _count(heads, f"{where}.heads", dense.num_heads[i], "heads"),
                "head_dim": _count(block["head_dim"], f"{where}.head_dim", dense.head_dim[i], "head dim"),
                "mlp_hidden": _count(block["mlp_hidden"], f"{where}.mlp_hidden", dense.mlp_hidden[i], "neurons"),
            }
        )
    widths = {"stage_dims": stages} if dense.family == "swin" else {}
    return {"embed_dim": stages[0], **widths, "blocks": out}


def _stage_counts(doc: Any, dense: ArchSpec, source: str) -> list[int]:
    """The residual width of every stage: ``embed_dim`` (ViT) or ``stage_dims`` (Swin)."""
    if dense.family != "swin":
        _check_keys(doc, TOP_KEYS, source)
        return [_count(doc["embed_dim"], f"{source}: embed_dim", dense.embed_dim, "channels")]
    _check_keys(doc, SWIN_KEYS, source, optional=("embed_dim",))
    widths = doc["stage_dims"]
    if not isinstance(widths, list) or len(widths) != dense.num_stages:
        raise ConfigError(f"{source}: 'stage_dims' needs {dense.num_stages} entries (one per stage)")
    stages = [
        _count(w, f"{source}: stage_dims[{s}]", limit, "channels")
        for s, (w, limit) in enumerate(zip(widths, dense.stage_dims, strict=True))
    ]
    if "embed_dim" in doc and doc["embed_dim"] != stages[0]:
        raise ConfigError(f"{source}: embed_dim {doc['embed_dim']!r} must equal stage_dims[0] ({stages[0]})")
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
    """Read and validate a hand-written width file (malformed JSON fails with one line)."""
    return parse_counts(read_json(path, "arch file"), dense, source=str(path))
