"""The architecture spec: the one description of a (possibly sliced) ViT, as data.

A dense DeiT/ViT and an OFB subnet differ only in their widths, so both are an ``ArchSpec``: a global
embedding width and, per block, a head count, a per-head q/k/v dim and an MLP hidden width (the OFB search
space, arXiv 2403.15835 sec. 3). ``from_dict`` validates every field and names any bad or unknown key, so a
hand-written JSON file fails with one clear line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.io import atomic_write_json, read_json

SCHEMA_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchSpec:
    """Widths and input geometry of a ViT with per-block widths.

    Args:
        base_model: registry name of the dense model this spec comes from.
        img_size: square input resolution in pixels.
        patch_size: square patch size in pixels.
        in_chans: input channels.
        num_classes: classifier outputs.
        embed_dim: width of the residual stream (one for the whole model).
        num_heads: attention heads per block.
        head_dim: per-head q/k/v dim per block.
        mlp_hidden: MLP hidden width per block.
        qkv_bias: whether the qkv projection has a bias.
        mean: per-channel normalisation mean the model expects.
        std: per-channel normalisation std the model expects.
        schema_version: version of this JSON schema.
    """

    base_model: str
    img_size: int
    patch_size: int
    in_chans: int
    num_classes: int
    embed_dim: int
    num_heads: tuple[int, ...]
    head_dim: tuple[int, ...]
    mlp_hidden: tuple[int, ...]
    qkv_bias: bool = True
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("num_heads", "head_dim", "mlp_hidden", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _validate(self)

    @property
    def depth(self) -> int:
        """Number of transformer blocks."""
        return len(self.num_heads)

    @property
    def num_patches(self) -> int:
        """Patch tokens per image (the class token not included)."""
        return (self.img_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Tokens per image, class token included."""
        return self.num_patches + 1

    @classmethod
    def uniform(
        cls,
        base_model: str,
        *,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        in_chans: int = 3,
        num_classes: int = 1000,
        **kwargs: Any,
    ) -> ArchSpec:
        """A timm-style spec: every block has the same heads and MLP ratio (head dim = embed_dim / heads)."""
        if num_heads <= 0 or embed_dim % num_heads:
            raise ConfigError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        return cls(
            base_model=base_model,
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dim=embed_dim,
            num_heads=(num_heads,) * depth,
            head_dim=(embed_dim // num_heads,) * depth,
            mlp_hidden=(int(embed_dim * mlp_ratio),) * depth,
            **kwargs,
        )

    def replace(self, **changes: Any) -> ArchSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``extra`` is flattened out: it is for callers, not the schema)."""
        out = dataclasses.asdict(self)
        out.pop("extra")
        for key in ("num_heads", "head_dim", "mlp_hidden", "mean", "std"):
            out[key] = list(out[key])
        out["depth"] = self.depth
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "arch spec") -> ArchSpec:
        """Validate and build a spec from a JSON-like dict.

        Args:
            data: the parsed JSON object.
            source: how error messages name the document.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        data = dict(data)
        depth = data.pop("depth", None)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.name in known
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in data
        )
        if missing:
            raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}")
        if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise ConfigError(f"{source}: unsupported schema_version {data['schema_version']!r}")
        try:
            spec = cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if depth is not None and depth != spec.depth:
            raise ConfigError(f"{source}: depth {depth} does not match {spec.depth} per-block entries")
        return spec

    def save(self, path: str | Path) -> Path:
        """Write the spec as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ArchSpec:
        """Read and validate a spec JSON file."""
        return cls.from_dict(read_json(path, "arch spec"), source=str(path))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(spec: ArchSpec) -> None:
    for name in ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim"):
        value = getattr(spec, name)
        if not _is_int(value) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(spec.base_model, str) or not spec.base_model:
        raise ConfigError("base_model must be a non-empty string")
    if spec.img_size % spec.patch_size:
        raise ConfigError(f"img_size {spec.img_size} is not a multiple of patch_size {spec.patch_size}")
    depth = len(spec.num_heads)
    if depth == 0:
        raise ConfigError("a model needs at least one block")
    for name in ("num_heads", "head_dim", "mlp_hidden"):
        values = getattr(spec, name)
        if len(values) != depth:
            raise ConfigError(f"{name} has {len(values)} entries, expected {depth} (one per block)")
        for i, value in enumerate(values):
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"{name}[{i}] must be a positive integer, got {value!r}")
    if len(spec.mean) != spec.in_chans or len(spec.std) != spec.in_chans:
        raise ConfigError(f"mean/std need {spec.in_chans} entries (one per input channel)")
    if any(not isinstance(s, (int, float)) or s <= 0 for s in spec.std):
        raise ConfigError("std entries must be positive numbers")
    if not isinstance(spec.qkv_bias, bool):
        raise ConfigError("qkv_bias must be true or false")
