"""The Typer ``app`` every CLI module registers its command on, and the console they print to."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(
    name="ofb-deploy",
    help="Compress a ViT with the OFB search, slice it, export to ONNX, build engines and validate them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()  # summaries go to stdout; progress and logs to stderr
err_console = Console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    """Route library logging through rich on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


@app.callback()
def _root() -> None:
    """Compress a ViT with the OFB search, slice it, export to ONNX, build engines and validate them."""
