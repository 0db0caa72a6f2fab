"""``TrtBuildConfig``: how one engine is built (the build stage's ``BuildConfig`` says which are built)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BeforeValidator, Field

from ofb_deploy.choices import Precision
from ofb_deploy.utils.config import Batches, ConfigModel, Int, PositiveInt, split_list

DEFAULT_BATCHES = (1, 8, 32)  # batch 1, a mid and a large batch: what is timed and what engine profiles cover


class TrtBuildConfig(ConfigModel):
    """Engine build options.

    Args:
        precision: ``fp32``, ``fp16`` or ``int8`` (strongly typed builds check that the ONNX matches).
        batches: batch sizes the profile must cover; min/opt/max are min, median and max of them.
        workspace_mb: workspace memory pool limit in MiB (``None``: TensorRT's default).
        timing_cache: file to load the timing cache from and save it back to.
        opt_level: builder optimisation level 0..5 (``None``: default 3).
        compute_capabilities: TensorRT-RTX targets such as ``["sm89", "sm120"]`` or ``["current"]``; empty:
            every target the installed TensorRT-RTX can build for (see ``tensorrt_rtx.resolve_targets``).
        tf32: allow TF32 matmuls in fp32 layers (faster on Ampere and newer, ~1e-3 relative error).
    """

    SECTION: ClassVar[str] = "build"

    precision: Precision = Precision.FP32
    batches: Batches = DEFAULT_BATCHES
    workspace_mb: PositiveInt | None = None
    timing_cache: Path | None = None
    opt_level: Annotated[Int, Field(ge=0, le=5)] | None = None
    compute_capabilities: Annotated[tuple[str, ...], BeforeValidator(split_list)] = ()
    tf32: bool = False

    @property
    def profile(self) -> tuple[int, int, int]:
        """(min, opt, max) batch: opt is the median requested size."""
        ordered = sorted(set(self.batches))
        return ordered[0], ordered[len(ordered) // 2], ordered[-1]
