"""``ofb-deploy bench``: latency percentiles of an engine, ONNX file or model folder at several batch sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.choices import Backend
from ofb_deploy.cli._app import app, console
from ofb_deploy.utils.config import parse_batches
from ofb_deploy.utils.io import atomic_write_json, check_writable_file
from ofb_deploy.validate.config import ValidateConfig

V = ValidateConfig.default


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
    target: Annotated[Path, typer.Argument(help="Engine (.engine), ONNX file or model folder.", show_default=False)],
    backend: Annotated[
        Backend | None, typer.Option(help="Backend (default: torch for a folder, ort-cpu for ONNX, an engine's own).")
    ] = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = ",".join(map(str, V("batches"))),
    baseline: Annotated[Path | None, typer.Option(help="Time this target interleaved too; report the speedup.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (torch, ort-cpu).")] = V("threads"),
    warmup_s: Annotated[float, typer.Option(help="Warm-up seconds per batch.")] = V("warmup_s"),
    min_iters: Annotated[int, typer.Option(help="Fewest timed iterations per batch.")] = V("min_iters"),
    min_time_s: Annotated[float, typer.Option(help="Fewest timed seconds per batch.")] = V("min_time_s"),
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")] = None,
) -> None:
    """Time a model: warm-up by time, then >= --min-iters iterations and >= --min-time-s seconds per batch."""
    from ofb_deploy.validate.bench import bench  # lazy: keeps --help from importing torch

    timing = ValidateConfig(batches=parse_batches(batch), threads=threads, warmup_s=warmup_s, min_iters=min_iters,
                            min_time_s=min_time_s)  # fmt: skip
    if json_out is not None:
        check_writable_file(json_out)  # before minutes of timing, not after
    doc = bench(target, backend=backend and backend.value, batches=timing.batches, baseline=baseline,
                threads=timing.threads, warmup_s=timing.warmup_s, min_iters=timing.min_iters,
                min_time_s=timing.min_time_s)  # fmt: skip
    console.print(_table(doc))
    if json_out is not None:
        atomic_write_json(json_out, doc)
        console.print(f"results -> {json_out}")
