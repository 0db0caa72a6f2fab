"""``ofb-deploy models``: the model registry (names ``--model`` takes), with widths, MACs and shipped weights."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.cli._app import app, console
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.models.pretrained import shipped_tags


@app.command("models")
def models_cli(pattern: Annotated[str, typer.Argument(help="Glob over the names, e.g. 'deit_*'.")] = "*") -> None:
    """List the registered models: input, widths (a Swin: per stage), MACs and params, pretrained weights."""
    from ofb_deploy.models import get_arch_spec, list_models  # lazy: keeps --help from importing torch

    table = Table("model", "input", "embed", "depth", "heads", "MLP", "MMACs", "params", "shipped weights")
    for name in list_models(pattern):
        s = get_arch_spec(name)
        heads, mlp = sorted(set(s.num_heads)), sorted(set(s.mlp_hidden))
        table.add_row(name, f"{s.in_chans}x{s.img_size}", "-".join(map(str, s.stage_widths)), str(s.depth),
                      "/".join(map(str, heads)), "/".join(map(str, mlp)), f"{count_macs(s).total / 1e6:.1f}",
                      f"{count_params(s) / 1e6:.2f}M", ", ".join(shipped_tags(name)) or "-")  # fmt: skip
    console.print(table)
