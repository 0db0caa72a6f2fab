"""``ofb-deploy build``: engines for one backend and precision (``--list``: what this machine can build/run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ofb_deploy.artifacts import RunDir
from ofb_deploy.build import build_run
from ofb_deploy.choices import BuildBackend, Precision
from ofb_deploy.cli._app import app, console
from ofb_deploy.engines import list_backends
from ofb_deploy.engines.config import TrtBuildConfig
from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.config import parse_batches
from ofb_deploy.validate.config import ValidateConfig

BATCHES = ",".join(map(str, ValidateConfig.default("batches")))  # the pipeline builds for the batches it times


def _print_backends() -> None:
    table = Table("backend", "version", "build", "run", "what build makes", "why not / what to install")
    for s in list_backends():
        yes = {True: "[green]yes[/]", False: "[red]no[/]"}
        row = (s.name, s.version or "-", yes[s.can_build], yes[s.can_run], escape(s.artifact), escape(s.reason))
        table.add_row(*row)
    console.print(table)


@app.command("build")
def build_cli(
    run_dir: Annotated[Path | None, typer.Argument(help="Run directory whose export is done.")] = None,
    backend: Annotated[BuildBackend, typer.Option(help="Backend to build.")] = BuildBackend.ORT_CPU,
    precision: Annotated[Precision, typer.Option(help="Precision.")] = TrtBuildConfig.default("precision"),
    batch: Annotated[str, typer.Option(help="Batch sizes of the profile (min, opt, max from these).")] = BATCHES,
    workspace: Annotated[int | None, typer.Option(help="TensorRT workspace limit in MiB.")] = None,
    timing_cache: Annotated[Path | None, typer.Option(help="TensorRT timing cache file.")] = None,
    opt_level: Annotated[int | None, typer.Option(help="TensorRT builder optimisation level 0..5.")] = None,
    compute_capability: Annotated[
        str, typer.Option(help="TensorRT-RTX targets, e.g. sm89,sm120 or current (default: all it supports).")
    ] = "",
    tf32: Annotated[
        bool, typer.Option("--tf32", help="Allow TF32 in TensorRT fp32 layers (~1e-3 rel. error).")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="Show which backends this machine can build and run.")] = False,
) -> None:
    """Build engines (and JSON sidecars) for every exported model of RUN_DIR."""
    if list_:
        return _print_backends()
    if run_dir is None:
        raise ConfigError("give a RUN_DIR to build, or --list to see the backends")

    opts = TrtBuildConfig(precision=precision, batches=parse_batches(batch), workspace_mb=workspace,
                          opt_level=opt_level, compute_capabilities=compute_capability, tf32=tf32)  # fmt: skip
    built = build_run(RunDir(run_dir), backend.value, opts.precision, opts.batches, workspace_mb=opts.workspace_mb,
                      timing_cache=timing_cache, opt_level=opts.opt_level,
                      compute_capabilities=opts.compute_capabilities, tf32=opts.tf32)  # fmt: skip
    for role, doc in built.items():
        where = doc.get("gpu") or doc.get("built_on") or "cpu"
        console.print(f"[bold green]built[/] {role} {backend} {precision} ({doc['library']} "
                      f"{doc['library_version']}, {where})")  # fmt: skip
