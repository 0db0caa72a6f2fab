"""The architecture spec: the one description of a (possibly sliced) vision transformer, as data.

A dense model and an OFB subnet differ only in their widths, so both are an ``ArchSpec``: per stage a
residual (embedding) width and, per block, a head count, a per-head q/k/v dim and an MLP hidden width (the OFB
search space, arXiv 2403.15835 sec. 3). ``family`` says how the blocks are wired:

* ``vit``: a class-token ViT (DeiT/ViT): one stage, global attention; ``embed_dim`` is the residual width.
* ``swin``: a Swin Transformer (Liu et al. 2021, arXiv 2103.14030): ``stage_depths`` blocks per stage, a
  patch merging between stages that halves the token grid and sets the next stage's width (``stage_dims``),
  (shifted-)window attention with ``window_size`` and global average pooling. ``embed_dim`` is the patch
  embedding's width, i.e. ``stage_dims[0]``.

The spec is a frozen pydantic model: the field types hold the per-field rules and two model validators the
cross-field ones. The swin-only keys are left out of a ViT's JSON, so every ViT spec written before ``family``
existed still loads. Any bad or unknown key fails with one ``ConfigError`` line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, Strict, ValidationError, computed_field, model_serializer, model_validator

from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.io import atomic_write_json, read_json

SCHEMA_VERSION = 1
STAGE_KEYS = ("stage_depths", "stage_dims", "window_size")  # the swin-only fields
PER_BLOCK = ("num_heads", "head_dim", "mlp_hidden")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# NOTE: strict: a JSON "8", 8.0 or true where a count belongs is a typo, not a count
Count = Annotated[int, Strict(), Field(gt=0)]
Number = Annotated[float, Strict()]


def _describe(exc: ValidationError) -> str:
    """One line for a validation error: the unknown or missing keys, else the first bad key, its value and why."""
    errors = exc.errors()
    for kind, what in (("extra_forbidden", "unknown"), ("missing", "missing")):
        keys = [str(e["loc"][0]) for e in errors if e["type"] == kind]
        if keys:
            allowed = f"; allowed keys: {', '.join(ArchSpec.model_fields)}" if what == "unknown" else ""
            return f"{what} key(s) {', '.join(keys)}{allowed}"
    err = errors[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    text = err["msg"].removeprefix("Value error, ")
    text = text[:1].lower() + text[1:]
    return f"{where} = {err['input']!r}: {text}" if where else text


class ArchSpec(BaseModel):
    """Widths and input geometry of a vision transformer with per-block widths: a dense model or an OFB subnet."""

    model_config = {"frozen": True, "extra": "forbid"}

    base_model: str = Field(min_length=1, description="registry name of the dense model this spec comes from")
    img_size: Count = Field(description="square input resolution in pixels")
    patch_size: Count = Field(description="square patch size in pixels")
    in_chans: Count = Field(description="input channels")
    num_classes: Count = Field(description="classifier outputs")
    embed_dim: Count = Field(description="width of the patch embedding (ViT: the residual stream; Swin: stage 0)")
    num_heads: tuple[Count, ...] = Field(min_length=1, description="attention heads per block (all stages, in order)")
    head_dim: tuple[Count, ...] = Field(description="per-head q/k/v dim per block")
    mlp_hidden: tuple[Count, ...] = Field(description="MLP hidden width per block")
    qkv_bias: Annotated[bool, Strict()] = Field(True, description="whether the qkv projection has a bias")
    mean: tuple[Number, ...] = Field(IMAGENET_MEAN, description="per-channel normalisation mean the model expects")
    std: tuple[Annotated[Number, Field(gt=0)], ...] = Field(IMAGENET_STD, description="per-channel normalisation std")
    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="version of this JSON schema")
    family: Literal["vit", "swin"] = Field("vit", description="`vit`: one stage, global attention; `swin`: stages")
    stage_depths: tuple[Count, ...] = Field((), description="Swin: blocks per stage (left out of a ViT's JSON)")
    stage_dims: tuple[Count, ...] = Field((), description="Swin: residual width per stage, [0] == embed_dim")
    # a stage whose grid is not larger than the window attends over the whole grid, unshifted (as timm)
    window_size: Annotated[int, Strict(), Field(ge=0)] = Field(0, description="Swin: attention window side in tokens")

    def __init__(self, **data: Any) -> None:
        # NOTE: every construction (from_dict, replace, uniform, a caller's ArchSpec(...)) fails with one line
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    @model_validator(mode="before")
    @classmethod
    def _check_depth(cls, data: Any) -> Any:
        # ``depth`` is written for readers and derived on reading: a stated one must match the per-block entries
        # (when those agree with each other; otherwise _check_shapes names the odd one)
        if not isinstance(data, dict) or "depth" not in data:
            return data
        data = dict(data)
        depth = data.pop("depth")
        lengths = {len(v) for k in PER_BLOCK if isinstance(v := data.get(k), list | tuple)}
        if len(lengths) == 1 and depth != (n := lengths.pop()):
            raise ValueError(f"depth {depth!r} does not match the {n} per-block entries")
        return data

    @model_validator(mode="after")
    def _check_shapes(self) -> ArchSpec:
        """Cross-field rules: per-block lengths, the patch grid, one mean/std per channel, the Swin stages."""
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        for name, n in ((k, len(getattr(self, k))) for k in PER_BLOCK[1:]):
            if n != self.depth:
                raise ValueError(f"{name} has {n} entries, expected {self.depth} (one per block)")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"mean/std need {self.in_chans} entries (one per input channel)")
        if self.family == "swin":
            self._check_stages()
        elif self.stage_depths or self.stage_dims or self.window_size:
            raise ValueError(f"{', '.join(STAGE_KEYS)} are for family swin, not {self.family}")
        return self

    def _check_stages(self) -> None:
        stages = len(self.stage_depths)
        if not stages or sum(self.stage_depths) != self.depth:
            raise ValueError(f"stage_depths sum to {sum(self.stage_depths)}, but there are {self.depth} blocks")
        if len(self.stage_dims) != stages:
            raise ValueError(f"stage_dims needs one positive width per stage ({stages}), got {len(self.stage_dims)}")
        if self.stage_dims[0] != self.embed_dim:
            raise ValueError(f"stage_dims[0] ({self.stage_dims[0]}) must equal embed_dim ({self.embed_dim})")
        if self.window_size <= 0:
            raise ValueError(f"window_size must be a positive integer for family swin, got {self.window_size}")
        for stage in range(stages):
            grid = self.stage_grid(stage)
            # NOTE: no padding anywhere: every patch merging halves an even grid, every window tiles its grid
            if stage and (self.stage_grid(stage - 1) % 2 or grid == 0):
                raise ValueError(f"stage {stage}: the {self.stage_grid(stage - 1)}-token grid cannot be halved")
            if grid % self.stage_window(stage)[0]:
                raise ValueError(f"stage {stage}: window {self.window_size} does not tile the {grid}x{grid} grid")

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> dict[str, Any]:
        # NOTE: a ViT's JSON reads as before ``family`` existed: no swin-only keys
        out = handler(self)
        if self.family != "swin":
            for key in STAGE_KEYS:
                out.pop(key, None)
        return out

    @computed_field(description="number of transformer blocks (derived; checked when read back)")
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
        return type(self)(**{name: getattr(self, name) for name in type(self).model_fields} | changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (lists, ``depth`` included; a ViT's without the swin-only keys)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any, source: str = "arch spec") -> ArchSpec:
        """Validate and build a spec from a JSON-like dict.

        Args:
            data: the parsed JSON object.
            source: how error messages name the document.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        try:
            return cls(**{str(k): v for k, v in data.items()})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write the spec as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ArchSpec:
        """Read and validate a spec JSON file."""
        return cls.from_dict(read_json(path, "arch spec"), source=str(path))
