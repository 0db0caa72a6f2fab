"""Rich progress bars with the columns every long stage uses (shown on rank 0 only)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ofb_deploy.utils.dist import is_main

console = Console(stderr=True)


def make_progress(transient: bool = False) -> Progress:
    """A ``Progress`` with description, bar, count, times and a free-form ``info`` field.

    Args:
        transient: remove the bars when done.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
        disable=not is_main(),
    )
