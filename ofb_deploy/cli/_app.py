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
    """Route logging through rich on stderr: ofb-deploy's own at INFO, third-party libraries at WARNING.

    NOTE: the ONNX exporter (onnxscript/onnx_ir) logs every rewrite at INFO; users want only ours.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    logging.getLogger("ofb_deploy").setLevel(logging.DEBUG if verbose else logging.INFO)


@app.callback()
def _root() -> None:
    """Compress a ViT with the OFB search, slice it, export to ONNX, build engines and validate them."""
