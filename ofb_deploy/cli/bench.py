"""``ofb-deploy bench``: latency percentiles of an engine, ONNX file or model folder at several batch sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.cli._app import app, console


def _table(doc: dict) -> Table:
    table = Table(title=f"{doc['target']} on {doc['backend']} ({doc['precision']})")
    for name in ("batch", "p50 ms", "p90 ms", "p99 ms", "mean ms", "img/s", "iters"):
        table.add_column(name, justify="right")
    has_base = "baseline" in doc
    if has_base:
        table.add_column("baseline p50 ms", justify="right")
        table.add_column("speedup", justify="right")
    for batch, r in doc["results"].items():
        row = [batch] + [f"{r[k]:.3f}" for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")]
        row += [f"{r['throughput']:.1f}", str(r["iterations"])]
        if has_base:
            row += [f"{r['baseline']['p50_ms']:.3f}", f"{r['speedup']:.2f}x"]
        table.add_row(*row)
    return table


@app.command("bench")
def bench_cli(
    target: Annotated[Path, typer.Argument(help="Engine (.engine), ONNX file or model folder.")],
    backend: Annotated[
        str | None, typer.Option(help="Backend (default: torch for a folder, ort-cpu for ONNX).")
    ] = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,32",
    baseline: Annotated[Path | None, typer.Option(help="Time this target interleaved too; report the speedup.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (torch, ort-cpu).")] = None,
    warmup_s: Annotated[float, typer.Option(help="Warm-up seconds per batch.")] = 0.2,
    min_iters: Annotated[int, typer.Option(help="Fewest timed iterations per batch.")] = 10,
    min_time_s: Annotated[float, typer.Option(help="Fewest timed seconds per batch.")] = 1.0,
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Time a model: warm-up by time, then >= --min-iters iterations and >= --min-time-s seconds per batch."""
    from ofb_deploy.utils.io import atomic_write_json
    from ofb_deploy.validate.bench import bench, parse_batches

    doc = bench(target, backend=backend, batches=parse_batches(batch), baseline=baseline, threads=threads,
                warmup_s=warmup_s, min_iters=min_iters, min_time_s=min_time_s)  # fmt: skip
    console.print(_table(doc))
    if out is not None:
        atomic_write_json(out, doc)
        console.print(f"results -> {out}")
