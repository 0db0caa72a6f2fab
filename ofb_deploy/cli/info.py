"""``ofb-deploy info``: library versions, ONNX Runtime providers, TensorRT availability, CUDA devices."""

from __future__ import annotations

from rich.table import Table

from ofb_deploy.cli._app import app, console


@app.command("info")
def info_cli() -> None:
    """Show library versions, ONNX Runtime providers, TensorRT availability and CUDA devices."""
    from ofb_deploy.timing.latency import collect_info  # lazy: keeps --help from importing torch

    table = Table(show_header=False, box=None)
    for key, value in collect_info().items():
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)
