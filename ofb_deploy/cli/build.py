"""``ofb-deploy build``: engines for one backend and precision (``--list``: what this machine can build/run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ofb_deploy.cli._app import app, console


def _batches(text: str) -> tuple[int, ...]:
    from ofb_deploy.errors import ConfigError

    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"--batch must be comma-separated integers like 1,8,32, got {text!r}") from exc
    if not values or min(values) < 1:
        raise ConfigError(f"--batch needs positive batch sizes, got {text!r}")
    return values


def _print_backends() -> None:
    from ofb_deploy.engines import list_backends

    table = Table("backend", "version", "build", "run", "what build makes", "why not / what to install")
    for s in list_backends():
        yes = {True: "[green]yes[/]", False: "[red]no[/]"}
        row = (s.name, s.version or "-", yes[s.can_build], yes[s.can_run], escape(s.artifact), escape(s.reason))
        table.add_row(*row)
    console.print(table)


@app.command("build")
def build_cli(
    run_dir: Annotated[Path | None, typer.Argument(help="run directory with export/*.onnx")] = None,
    backend: Annotated[
        str, typer.Option(help="torch-free backend: ort-cpu, ort-cuda, ort-trt, tensorrt, tensorrt-rtx")
    ] = "ort-cpu",
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8")] = "fp32",
    batch: Annotated[str, typer.Option(help="batch sizes of the profile (min,opt,max from these)")] = "1,8,32",
    workspace: Annotated[int | None, typer.Option(help="TensorRT workspace limit in MiB")] = None,
    timing_cache: Annotated[Path | None, typer.Option(help="TensorRT timing cache file")] = None,
    opt_level: Annotated[int | None, typer.Option(help="TensorRT builder optimisation level 0..5")] = None,
    compute_capability: Annotated[
        str, typer.Option(help="TensorRT-RTX targets, e.g. sm89,sm120 or current (default: all it supports)")
    ] = "",
    tf32: Annotated[bool, typer.Option("--tf32", help="allow TF32 in TensorRT fp32 layers (~1e-3 rel. error)")] = False,
    list_: Annotated[bool, typer.Option("--list", help="show which backends this machine can build and run")] = False,
) -> None:
    """Build engines (and JSON sidecars) for every exported model of RUN_DIR."""
    from ofb_deploy.artifacts import RunDir
    from ofb_deploy.engines import build_run
    from ofb_deploy.errors import ConfigError

    if list_:
        _print_backends()
        return
    if run_dir is None:
        raise ConfigError("give a RUN_DIR to build, or --list to see the backends")
    built = build_run(
        RunDir(run_dir),
        backend,
        precision,
        _batches(batch),
        workspace_mb=workspace,
        timing_cache=timing_cache,
        opt_level=opt_level,
        compute_capabilities=tuple(c for c in compute_capability.split(",") if c.strip()),
        tf32=tf32,
    )
    for role, doc in built.items():
        where = doc.get("gpu") or doc.get("built_on") or "cpu"
        console.print(
            f"[bold green]built[/] {role} {backend} {precision} ({doc['library']} {doc['library_version']}, {where})"
        )
