"""``ofb-deploy slice``: cut the searched subnet of a run (or hand-written widths) into a plain dense model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli._app import RunArg, app, console
from ofb_deploy.slicing.config import ALIGN_CHOICES, SliceConfig

_HELP_ARCH = "Widths to slice the dense model to: a width file, or a copy of a search's arch document."


def _print_summary(summary: dict, out: Path) -> None:
    table = Table(show_header=False, box=None)
    dense_f, dense_p = summary["dense_flops"], summary["dense_params"]
    table.add_row("[bold]subnet[/]", str(out))
    table.add_row("[bold]MMACs[/]", f"{summary['flops'] / 1e6:.2f} ({100 * summary['flops'] / dense_f:.1f}% of dense)")
    table.add_row("[bold]params[/]", f"{summary['params']:,} ({100 * summary['params'] / dense_p:.1f}% of dense)")
    embed = "-".join(map(str, summary["stage_dims"])) if "stage_dims" in summary else summary["embed_dim"]
    table.add_row("[bold]embed / heads[/]", f"{embed} / {summary['num_heads']}")
    table.add_row("[bold]head dim / MLP[/]", f"{summary['head_dim']} / {summary['mlp_hidden']}")
    if "align_flops_change_pct" in summary:
        before = summary["flops_before_align"] / 1e6
        change = f"{summary['align_flops_change_pct']:+.2f}% ({before:.2f} -> {summary['flops'] / 1e6:.2f} MMACs)"
        table.add_row(f"[bold]align {summary['align']} FLOPs change[/]", change)
    console.print(table)


@app.command("slice")
def slice_cli(
    run_dir: RunArg,
    align: Annotated[
        int, typer.Option(help=f"Round widths up to a multiple: {', '.join(map(str, ALIGN_CHOICES))}.")
    ] = SliceConfig.default("align"),
    arch: Annotated[Path | None, typer.Option(help=_HELP_ARCH)] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="With --arch: dense model (default: the run's).")] = None,
    model: Annotated[str | None, typer.Option(help="With --arch: registry name of a weights file's model.")] = None,
) -> None:
    """Slice the searched subnet into RUN's slice folder, or (--arch) the dense model to given widths."""
    from ofb_deploy.slicing import slice_run  # lazy: keeps --help from importing torch

    config = SliceConfig(align=align)
    run = RunDir.for_output(run_dir) if arch is not None else RunDir(run_dir)
    summary = slice_run(run, config.align, arch=arch, checkpoint=checkpoint, model=model)
    _print_summary(summary, run.slice_dir)
