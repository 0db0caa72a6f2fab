"""``SliceConfig``: how the slice stage rounds the searched widths (``align.py``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator

from ofb_deploy.utils.config import ConfigModel, Int

ALIGN_CHOICES = (1, 8, 16, 64)  # 1 keeps the search's widths; 8/16/64 suit tensor cores and GPU kernels


def _align(value: int) -> int:
    if value not in ALIGN_CHOICES:
        raise ValueError(f"allowed: {', '.join(map(str, ALIGN_CHOICES))}")
    return value


Align = Annotated[Int, AfterValidator(_align)]


class SliceConfig(ConfigModel):
    """Settings of the slice stage.

    Args:
        align: round every width up to a multiple of this (``ALIGN_CHOICES``).
    """

    SECTION: ClassVar[str] = "slice"

    align: Align = 1
