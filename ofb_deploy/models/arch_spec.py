"""The architecture spec: the one description of a (possibly sliced) vision transformer, as data.

A dense model and an OFB subnet differ only in their widths, so both are an ``ArchSpec``: per stage a
residual (embedding) width and, per block, a head count, a per-head q/k/v dim and an MLP hidden width (the OFB
search space, arXiv 2403.15835 sec. 3). ``family`` says how the blocks are wired:

* ``vit``: a class-token ViT (DeiT/ViT): one stage, global attention; ``embed_dim`` is the residual width.
* ``swin``: a Swin Transformer (Liu et al. 2021, arXiv 2103.14030): ``stage_depths`` blocks per stage, a
  patch merging between stages that halves the token grid and sets the next stage's width (``stage_dims``),
  (shifted-)window attention with ``window_size`` and global average pooling. ``embed_dim`` is the patch
  embedding's width, i.e. ``stage_dims[0]``.

The swin-only keys are left out of a ViT's JSON, so every ViT spec written before ``family`` existed still
loads. ``from_dict`` validates every field and names any bad or unknown key, so a hand-written JSON file fails
with one clear line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.io import atomic_write_json, read_json

SCHEMA_VERSION = 1
FAMILIES = ("vit", "swin")
STAGE_KEYS = ("stage_depths", "stage_dims", "window_size")  # the swin-only fields
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchSpec:
    """Widths and input geometry of a vision transformer with per-block widths.

    Args:
        base_model: registry name of the dense model this spec comes from.
        img_size: square input resolution in pixels.
        patch_size: square patch size in pixels.
        in_chans: input channels.
        num_classes: classifier outputs.
        embed_dim: width of the patch embedding (ViT: of the whole residual stream; Swin: of stage 0).
        num_heads: attention heads per block (blocks of all stages, in order).
        head_dim: per-head q/k/v dim per block.
        mlp_hidden: MLP hidden width per block.
        qkv_bias: whether the qkv projection has a bias.
        mean: per-channel normalisation mean the model expects.
        std: per-channel normalisation std the model expects.
        schema_version: version of this JSON schema.
        family: ``vit`` or ``swin`` (how the blocks are wired, see the module docstring).
        stage_depths: Swin: blocks per stage (empty for a ViT).
        stage_dims: Swin: residual width per stage, ``stage_dims[0] == embed_dim`` (empty for a ViT).
        window_size: Swin: side of the attention window in tokens (0 for a ViT); a stage whose grid is not
            larger than the window attends over the whole grid and is not shifted (as timm).
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
    family: str = "vit"
    stage_depths: tuple[int, ...] = ()
    stage_dims: tuple[int, ...] = ()
    window_size: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("num_heads", "head_dim", "mlp_hidden", "mean", "std", "stage_depths", "stage_dims"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _validate(self)
        if self.family == "swin":
            _validate_swin(self)
        elif any(getattr(self, k) for k in STAGE_KEYS):
            raise ConfigError(f"{', '.join(STAGE_KEYS)} are for family swin, not {self.family}")

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
        """Tokens per image entering the first block (a ViT's class token included)."""
        return self.num_patches + (1 if self.family == "vit" else 0)

    # -- stages (a ViT is one stage) ----------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        """Stages of blocks sharing one residual width (1 for a ViT)."""
        return len(self.stage_depths) if self.family == "swin" else 1

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Residual width of each stage."""
        return self.stage_dims if self.family == "swin" else (self.embed_dim,)

    @property
    def block_stage(self) -> tuple[int, ...]:
        """Stage index of each block."""
        if self.family != "swin":
            return (0,) * self.depth
        return tuple(s for s, n in enumerate(self.stage_depths) for _ in range(n))

    def stage_blocks(self, stage: int) -> range:
        """Global indices of the blocks of ``stage``."""
        depths = self.stage_depths if self.family == "swin" else (self.depth,)
        start = sum(depths[:stage])
        return range(start, start + depths[stage])

    def block_prefix(self, block: int) -> str:
        """State-dict prefix of a block: ``blocks.3.`` (ViT) or ``layers.1.blocks.0.`` (Swin, timm's names)."""
        if self.family != "swin":
            return f"blocks.{block}."
        stage = self.block_stage[block]
        return f"layers.{stage}.blocks.{block - self.stage_blocks(stage).start}."

    def embed_name(self, stage: int) -> str:
        """Name of a stage's residual channels as a searchable unit group (``embed``, ``layers.1.embed``); the
        search's masks and ``scale.*`` tensors carry it, like a block's ``block_prefix`` + ``attn``/``mlp``."""
        return f"layers.{stage}.embed" if self.family == "swin" else "embed"

    def stage_grid(self, stage: int) -> int:
        """Side of the token grid in ``stage`` (each Swin patch merging halves it)."""
        return (self.img_size // self.patch_size) >> stage

    def stage_window(self, stage: int) -> tuple[int, int]:
        """(window side, shift) of ``stage``'s shifted blocks; a grid no larger than the window is not shifted."""
        grid = self.stage_grid(stage)
        if grid <= self.window_size:
            return grid, 0
        return self.window_size, self.window_size // 2

    def with_widths(
        self,
        stage_widths: tuple[int, ...],
        num_heads: tuple[int, ...],
        head_dim: tuple[int, ...],
        mlp_hidden: tuple[int, ...],
    ) -> ArchSpec:
        """A copy with new widths (same family, geometry and classes), ``embed_dim`` kept equal to stage 0's.

        Args:
            stage_widths: residual width per stage (one entry for a ViT).
            num_heads: heads per block.
            head_dim: per-head dim per block.
            mlp_hidden: MLP width per block.
        """
        changes: dict[str, Any] = {"embed_dim": int(stage_widths[0]), "num_heads": num_heads}
        changes.update(head_dim=head_dim, mlp_hidden=mlp_hidden)
        if self.family == "swin":
            changes["stage_dims"] = tuple(int(w) for w in stage_widths)
        elif len(stage_widths) != 1:
            raise ConfigError(f"a {self.family} model has one stage, got {len(stage_widths)} widths")
        return self.replace(**changes)

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

    @classmethod
    def swin(
        cls,
        base_model: str,
        *,
        img_size: int,
        patch_size: int,
        window_size: int,
        embed_dim: int,
        depths: tuple[int, ...],
        num_heads: tuple[int, ...],
        mlp_ratio: float = 4.0,
        in_chans: int = 3,
        num_classes: int = 1000,
        **kwargs: Any,
    ) -> ArchSpec:
        """A timm-style Swin spec: the width doubles at each patch merging; per stage one head count (head dim =
        width / heads) and one MLP ratio.

        Args:
            base_model: registry name.
            img_size: input resolution.
            patch_size: patch embedding stride.
            window_size: attention window side in tokens.
            embed_dim: stage 0 width.
            depths: blocks per stage.
            num_heads: heads per stage.
            mlp_ratio: MLP width over the stage width.
            in_chans: input channels.
            num_classes: classifier outputs.
        """
        dims = tuple(embed_dim * 2**s for s in range(len(depths)))
        if len(num_heads) != len(depths) or any(h <= 0 or d % h for d, h in zip(dims, num_heads, strict=True)):
            raise ConfigError(f"stage widths {dims} are not divisible by the heads {tuple(num_heads)}")
        per_block = [(d, h) for d, h, n in zip(dims, num_heads, depths, strict=True) for _ in range(n)]
        return cls(
            base_model=base_model,
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dim=embed_dim,
            num_heads=tuple(h for _, h in per_block),
            head_dim=tuple(d // h for d, h in per_block),
            mlp_hidden=tuple(int(d * mlp_ratio) for d, _ in per_block),
            family="swin",
            stage_depths=tuple(depths),
            stage_dims=dims,
            window_size=window_size,
            **kwargs,
        )

    def replace(self, **changes: Any) -> ArchSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``extra`` is left out: it is for callers, not the schema; so are the swin-only
        keys of a ViT, so its JSON reads as before ``family`` existed)."""
        out = dataclasses.asdict(self)
        out.pop("extra")
        for key in ("num_heads", "head_dim", "mlp_hidden", "mean", "std", "stage_depths", "stage_dims"):
            out[key] = list(out[key])
        if self.family != "swin":
            for key in STAGE_KEYS:
                out.pop(key)
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
    if spec.family not in FAMILIES:
        raise ConfigError(f"family must be one of {', '.join(FAMILIES)}, got {spec.family!r}")


def _validate_swin(spec: ArchSpec) -> None:
    stages = len(spec.stage_depths)
    if stages == 0 or any(not _is_int(n) or n <= 0 for n in spec.stage_depths):
        raise ConfigError("stage_depths needs one positive block count per stage")
    if sum(spec.stage_depths) != spec.depth:
        raise ConfigError(f"stage_depths sum to {sum(spec.stage_depths)}, but there are {spec.depth} blocks")
    if len(spec.stage_dims) != stages or any(not _is_int(w) or w <= 0 for w in spec.stage_dims):
        raise ConfigError(f"stage_dims needs one positive width per stage ({stages})")
    if spec.stage_dims[0] != spec.embed_dim:
        raise ConfigError(f"stage_dims[0] ({spec.stage_dims[0]}) must equal embed_dim ({spec.embed_dim})")
    if not _is_int(spec.window_size) or spec.window_size <= 0:
        raise ConfigError(f"window_size must be a positive integer, got {spec.window_size!r}")
    for stage in range(stages):
        grid = spec.stage_grid(stage)
        # NOTE: no padding anywhere: every patch merging halves an even grid, every window tiles its grid
        if stage and (spec.stage_grid(stage - 1) % 2 or grid == 0):
            raise ConfigError(f"stage {stage}: the {spec.stage_grid(stage - 1)}-token grid cannot be halved")
        if grid % spec.stage_window(stage)[0]:
            raise ConfigError(f"stage {stage}: window {spec.window_size} does not tile the {grid}x{grid} grid")
