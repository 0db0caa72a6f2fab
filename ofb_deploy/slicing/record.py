"""``SliceRecord``: the kept unit indices of a subnet, as data that can be saved and replayed.

OFB (arXiv 2403.15835, sec. 3) searches one embedding width for the residual stream and, per block, a set of
attention heads, a set of q/k/v channels inside each kept head, and a set of MLP neurons. The search writes
them as index lists (``RunDir.arch_path``); a hand-written width file or
``--align`` produces the same lists. Like Torch-Pruning's pruning history, the record is enough to cut the
same subnet again from the same dense weights (``slice_subnet``), and it validates every index on load so
a broken file fails with one line. A Swin has one residual width per stage, so its record also holds
``stage_idx`` (kept channels of each stage; ``embed_idx`` is stage 0's, the patch embedding's, as in the spec).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.utils.io import atomic_write_json, read_json

RECORD_VERSION = 1


@dataclass(frozen=True)
class BlockRecord:
    """Kept units of one transformer block (dense indices, ascending).

    Args:
        head_idx: kept dense heads.
        channel_idx: per kept head, its kept q/k/v channels (all of one length: the subnet's head dim).
        mlp_idx: kept MLP neurons.
    """

    head_idx: tuple[int, ...]
    channel_idx: tuple[tuple[int, ...], ...]
    mlp_idx: tuple[int, ...]

    @property
    def heads(self) -> int:
        return len(self.head_idx)

    @property
    def head_dim(self) -> int:
        return len(self.channel_idx[0])

    @property
    def mlp_hidden(self) -> int:
        return len(self.mlp_idx)

    def to_dict(self) -> dict[str, Any]:
        return {
            "heads": self.heads,
            "head_dim": self.head_dim,
            "mlp_hidden": self.mlp_hidden,
            "head_idx": list(self.head_idx),
            "channel_idx": [list(c) for c in self.channel_idx],
            "mlp_idx": list(self.mlp_idx),
        }


@dataclass(frozen=True)
class SliceRecord:
    """Which dense units a subnet keeps; ``spec`` gives the subnet's ``ArchSpec``.

    Args:
        dense_arch: the dense model's spec.
        embed_idx: kept residual-stream channels.
        blocks: one ``BlockRecord`` per block.
        source: where the indices came from (``search``, ``handwritten``).
        align: the multiple widths were rounded up to (1: none).
        info: free-form provenance (added units, FLOPs before alignment ...).
        stage_idx: Swin: kept channels of every stage, ``stage_idx[0] == embed_idx`` (empty for a ViT).
    """

    dense_arch: ArchSpec
    embed_idx: tuple[int, ...]
    blocks: tuple[BlockRecord, ...]
    source: str = "search"
    align: int = 1
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    stage_idx: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        _check_record(self)

    @classmethod
    def from_stages(
        cls,
        dense_arch: ArchSpec,
        stages: tuple[tuple[int, ...], ...],
        blocks: tuple[BlockRecord, ...],
        **kwargs: Any,
    ) -> SliceRecord:
        """A record from the kept channels of every stage (one entry for a ViT).

        Args:
            dense_arch: the dense spec.
            stages: kept residual channels per stage.
            blocks: one ``BlockRecord`` per block.
            **kwargs: ``source``, ``align``, ``info``.
        """
        stage_idx = tuple(stages) if dense_arch.family == "swin" else ()
        return cls(dense_arch=dense_arch, embed_idx=stages[0], blocks=blocks, stage_idx=stage_idx, **kwargs)

    @property
    def stages(self) -> tuple[tuple[int, ...], ...]:
        """Kept residual channels of each stage (a ViT's one stage: ``embed_idx``)."""
        return self.stage_idx if self.stage_idx else (self.embed_idx,)

    @property
    def spec(self) -> ArchSpec:
        """The sliced model's spec (same input geometry and classes as the dense one)."""
        return self.dense_arch.with_widths(
            stage_widths=tuple(len(idx) for idx in self.stages),
            num_heads=tuple(b.heads for b in self.blocks),
            head_dim=tuple(b.head_dim for b in self.blocks),
            mlp_hidden=tuple(b.mlp_hidden for b in self.blocks),
        )

    @classmethod
    def from_arch(
        cls,
        arch: dict[str, Any],
        dense_arch: ArchSpec | None = None,
        source: str = "search",
        doc: str = "search result",
    ) -> SliceRecord:
        """Build a record from the search result document (``RunDir.arch_path``: index lists).

        Args:
            arch: the parsed document (``embed_idx`` and per block ``head_idx``/``channel_idx``/``mlp_idx``).
            dense_arch: the dense spec; default ``arch["dense_arch"]``.
            source: provenance label.
            doc: how error messages name the document.
        """
        if not isinstance(arch, dict):
            raise ConfigError(f"{doc}: expected a JSON object")
        if dense_arch is None:
            if "dense_arch" not in arch:
                raise ConfigError(f"{doc}: missing key dense_arch")
            dense_arch = ArchSpec.from_dict(arch["dense_arch"], source=f"{doc} dense_arch")
        blocks = arch.get("blocks")
        if not isinstance(blocks, list):
            raise ConfigError(f"{doc}: 'blocks' must be a list with one entry per block")
        try:
            records = tuple(
                BlockRecord(
                    head_idx=_ints(b["head_idx"]),
                    channel_idx=tuple(_ints(c) for c in b["channel_idx"]),
                    mlp_idx=_ints(b["mlp_idx"]),
                )
                for b in blocks
            )
            embed_idx = _ints(arch["embed_idx"])
            stage_idx = tuple(_ints(idx) for idx in arch.get("stage_idx") or [])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{doc}: bad or missing index list ({type(exc).__name__}: {exc})") from None
        try:
            return cls(dense_arch=dense_arch, embed_idx=embed_idx, blocks=records, source=source, stage_idx=stage_idx)
        except ConfigError as exc:
            raise ConfigError(f"{doc}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ``artifacts.slice_record`` file)."""
        return {
            "record_version": RECORD_VERSION,
            "source": self.source,
            "align": self.align,
            "dense_arch": self.dense_arch.to_dict(),
            "embed_dim": len(self.embed_idx),
            "embed_idx": list(self.embed_idx),
            **_stage_entries(self.stage_idx),
            "blocks": [b.to_dict() for b in self.blocks],
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], doc: str = "slice record") -> SliceRecord:
        """Inverse of ``to_dict`` (validated)."""
        if not isinstance(data, dict) or data.get("record_version") != RECORD_VERSION:
            raise ConfigError(f"{doc}: not a version-{RECORD_VERSION} slice record")
        rec = cls.from_arch(data, source=str(data.get("source", "search")), doc=doc)
        return cls(
            dense_arch=rec.dense_arch,
            embed_idx=rec.embed_idx,
            blocks=rec.blocks,
            source=rec.source,
            align=int(data.get("align", 1)),
            info=dict(data.get("info") or {}),
            stage_idx=rec.stage_idx,
        )

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> SliceRecord:
        return cls.from_dict(read_json(path, "slice record"), doc=str(path))


def _stage_entries(stage_idx: tuple[tuple[int, ...], ...]) -> dict[str, Any]:
    """``stage_dims`` and ``stage_idx`` of a Swin record's JSON (nothing for a ViT)."""
    if not stage_idx:
        return {}
    return {"stage_dims": [len(idx) for idx in stage_idx], "stage_idx": [list(idx) for idx in stage_idx]}


def _ints(values: Any) -> tuple[int, ...]:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError("expected a list of integers")
    return tuple(values)


def _check_indices(name: str, idx: tuple[int, ...], limit: int) -> None:
    if not idx:
        raise ConfigError(f"{name} keeps no units (at least one is needed)")
    if any(b <= a for a, b in zip(idx, idx[1:], strict=False)):
        raise ConfigError(f"{name} must be strictly ascending without repeats")
    if idx[0] < 0 or idx[-1] >= limit:
        raise ConfigError(f"{name} has an index outside 0..{limit - 1}")


def _check_record(rec: SliceRecord) -> None:
    dense = rec.dense_arch
    if len(rec.blocks) != dense.depth:
        raise ConfigError(f"{len(rec.blocks)} blocks given, the dense model has {dense.depth}")
    _check_indices("embed_idx", rec.embed_idx, dense.embed_dim)
    if dense.family == "swin":
        if len(rec.stage_idx) != dense.num_stages:
            raise ConfigError(f"stage_idx needs one list per stage ({dense.num_stages}), got {len(rec.stage_idx)}")
        if rec.stage_idx[0] != rec.embed_idx:
            raise ConfigError("stage_idx[0] must equal embed_idx (both are the patch embedding's channels)")
        for s, (idx, width) in enumerate(zip(rec.stage_idx, dense.stage_dims, strict=True)):
            _check_indices(f"stage_idx[{s}]", idx, width)
    elif rec.stage_idx:
        raise ConfigError(f"stage_idx is for family swin, not {dense.family}")
    for i, block in enumerate(rec.blocks):
        _check_indices(f"blocks[{i}].head_idx", block.head_idx, dense.num_heads[i])
        if len(block.channel_idx) != len(block.head_idx):
            raise ConfigError(f"blocks[{i}].channel_idx needs one list per kept head ({len(block.head_idx)})")
        for j, chans in enumerate(block.channel_idx):
            _check_indices(f"blocks[{i}].channel_idx[{j}]", chans, dense.head_dim[i])
            if len(chans) != len(block.channel_idx[0]):
                raise ConfigError(f"blocks[{i}]: every kept head must keep the same number of channels")
        _check_indices(f"blocks[{i}].mlp_idx", block.mlp_idx, dense.mlp_hidden[i])
