"""``ofb-deploy validate``: accuracy of every built engine and dense-vs-subnet latency of a run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.artifacts import RunDir
from ofb_deploy.choices import Backend
from ofb_deploy.cli._app import ALL_HELP, RunArg, app, console
from ofb_deploy.utils.config import parse_batches
from ofb_deploy.validate.config import ValidateConfig

V = ValidateConfig.default


def summary_table(doc: dict) -> Table:
    """Top-1 per model/engine, then speedups per backend and batch."""
    table = Table(title="validation")
    for name in ("model", "top-1 %", "top-5 %", "agreement %"):
        table.add_column(name, justify="right")
    for role in ("dense", "subnet"):
        m = doc["models"][role]
        table.add_row(f"torch {role}", f"{m['top1']:.2f}", f"{m['top5']:.2f}", "-")
    for e in doc["engines"]:
        name = f"{e['role']} {e['backend']} {e['precision']}"
        if "error" in e:
            table.add_row(name, "error", "-", e["error"][:40])
            continue
        agree = 100 * e["agreement"]["top1_agreement"]
        table.add_row(name, f"{e['top1']:.2f}", f"{e['top5']:.2f}", f"{agree:.2f}")
    return table


def speedup_table(doc: dict) -> Table:
    """Median latency of both roles and the speedup per backend and batch."""
    table = Table(title=f"latency (FLOPs ratio {doc['flops_ratio']:.2f}x)")
    for name in ("backend", "batch", "dense p50 ms", "subnet p50 ms", "speedup", "speedup / FLOPs"):
        table.add_column(name, justify="right")
    for key, per_batch in doc["latency"].items():
        for batch, e in per_batch.items():
            if not isinstance(e, dict) or "speedup" not in e:
                continue
            table.add_row(key, batch, f"{e['dense']['p50_ms']:.3f}", f"{e['subnet']['p50_ms']:.3f}",
                          f"{e['speedup']:.2f}x", f"{e['speedup_per_flops']:.2f}")  # fmt: skip
    return table


@app.command("validate")
def validate_cli(
    run_dir: RunArg,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes to time.")] = ",".join(map(str, V("batches"))),
    backends: Annotated[
        str | None, typer.Option(help=f"Comma-separated backends (default: all built): {', '.join(Backend.values())}.")
    ] = None,
    val_size: Annotated[str | None, typer.Option(help=f"Validation images: {ALL_HELP} (default: all).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (torch, ort-cpu).")] = V("threads"),
    min_time_s: Annotated[float, typer.Option(help="Fewest timed seconds per model and batch.")] = V("min_time_s"),
    no_latency: Annotated[bool, typer.Option("--no-latency", help="Accuracy only.")] = not V("latency"),
) -> None:
    """Top-1/top-5 of every engine vs PyTorch, and dense-vs-subnet latency interleaved per backend and batch."""
    from ofb_deploy.validate.validate import validate_run  # lazy: keeps --help from importing torch

    config = ValidateConfig(batches=parse_batches(batch), backends=backends, val_size=val_size, threads=threads,
                            min_time_s=min_time_s, latency=not no_latency)  # fmt: skip
    run = RunDir(run_dir)
    doc = validate_run(run, config)
    console.print(summary_table(doc))
    if doc["latency"]:
        console.print(speedup_table(doc))
    console.print(f"results -> {run.validate_path}")
