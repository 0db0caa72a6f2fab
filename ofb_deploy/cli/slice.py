"""``ofb-deploy slice``: cut the searched subnet of a run (or hand-written widths) into a plain dense model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.cli._app import app, console
from ofb_deploy.errors import ConfigError


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
    run_dir: Annotated[Path | None, typer.Argument(help="Run directory with search/arch.json.")] = None,
    align: Annotated[int, typer.Option(help="Round widths up to a multiple of 8, 16 or 64.")] = 1,
    arch: Annotated[Path | None, typer.Option(help="Hand-written widths (counts) instead of a search.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Dense model folder or weights file (with --arch).")] = None,
    model: Annotated[str | None, typer.Option(help="Registry name when --checkpoint is a weights file.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (with --arch).")] = None,
) -> None:
    """Slice the searched subnet into a plain dense model (RUN/slice/), or a dense checkpoint to --arch widths."""
    from ofb_deploy.pipeline import RunDir
    from ofb_deploy.slicing import slice_handwritten, slice_run

    if arch is not None:
        if checkpoint is None or out is None or run_dir is not None:
            raise ConfigError("--arch needs --checkpoint DENSE and --out DIR (and no RUN_DIR)")
        summary = slice_handwritten(arch, checkpoint, out, model=model, align=align)
        return _print_summary(summary, out)
    if run_dir is None:
        raise ConfigError("give a RUN_DIR, or --arch FILE --checkpoint DENSE --out DIR")
    run = RunDir(run_dir)
    _print_summary(slice_run(run, align=align), run.slice_dir)
