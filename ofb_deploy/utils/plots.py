"""Matplotlib without a display, and figures written atomically: what every plot of a report or study shares."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ofb_deploy.utils.io import atomic_write_bytes


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed; imported on first use: it is slow to load)."""
    import matplotlib

    matplotlib.use("Agg")  # NOTE: before pyplot is imported anywhere, so no display is ever needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG at ``path`` (temporary file, then rename) and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(Path(path), buf.getvalue())
    pyplot().close(fig)
