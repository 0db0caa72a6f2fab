"""``SliceConfig``: how the slice stage rounds the searched widths (``align.py``)."""

from __future__ import annotations

from typing import ClassVar

from ofb_deploy.utils.config import ConfigModel, PositiveInt


class SliceConfig(ConfigModel):
    """Settings of the slice stage.

    Args:
        align: round every width up to a multiple of this (8, 16 or 64 help GPU kernels; 1 keeps the search's).
    """

    SECTION: ClassVar[str] = "slice"

    align: PositiveInt = 1
