"""``ofb-deploy compare`` and ``ofb-deploy sweep``: OFB against pruning baselines at equal MACs and epochs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.artifacts import RunDir
from ofb_deploy.choices import Method
from ofb_deploy.cli._app import RunArg, app, console
from ofb_deploy.compare.config import CompareConfig
from ofb_deploy.utils.config import parse_batches

C = CompareConfig.default
_HELP_METHODS = f"Comma-separated methods: {', '.join(Method.values())} (ofb is always run)."
_HELP_BATCH = "Comma-separated ORT CPU batch sizes to time."


def compare_table(doc: dict) -> Table:
    """One row per method: mean top-1 (per seed), MACs, params and ORT CPU latency per batch."""
    batches = [str(b) for b in doc["latency"]["batches"]]
    held = "equal MACs (ofb-latency: equal latency)" if "ofb-latency" in doc["methods"] else "equal MACs"
    table = Table(title=f"{held}, {doc['budget']['epochs']} epochs each (ORT CPU latency, ms)")
    for name in ("method", "top-1 mean", "per seed", "MMACs", "params k", *[f"b{b}" for b in batches]):
        table.add_column(name, justify="right")
    dense = doc["dense"]
    top1 = f"{dense['top1']:.2f}" if dense.get("top1") is not None else "-"
    lat = [f"{dense['latency_ms'][b]:.3f}" for b in batches]
    table.add_row("dense", top1, "", f"{dense['flops'] / 1e6:.2f}", f"{dense['params'] / 1e3:.1f}", *lat)
    for method, m in doc["methods"].items():
        seeds = " ".join(f"{r['top1']:.2f}" for r in m["seeds"].values())
        lat = [f"{m['latency_ms'][b]:.3f}" for b in batches]
        table.add_row(method, f"{m['top1_mean']:.2f}", seeds, f"{m['flops_mean'] / 1e6:.2f}",
                      f"{m['params_mean'] / 1e3:.1f}", *lat)  # fmt: skip
    return table


def _latency_line(check: dict) -> str:
    ratios = ", ".join(f"seed {seed} {r['latency_ratio']:.3f}x" for seed, r in check["seeds"].items())
    return (
        f"ofb-latency vs ofb at batch {check['batch']}: latency {ratios} (within 10%: {check['within_10pct']}); "
        f"top-1 at or above OFB at every seed: {check['top1_at_or_above_ofb']}"
    )


@app.command("compare")
def compare_cli(
    run_dir: RunArg,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (mean and each seed are reported).")] = ",".join(
        map(str, C("seeds"))
    ),
    methods: Annotated[str, typer.Option(help=_HELP_METHODS)] = ",".join(C("methods")),
    batch: Annotated[str, typer.Option(help=_HELP_BATCH)] = ",".join(map(str, C("batches"))),
    threads: Annotated[int | None, typer.Option(help="ORT CPU threads.")] = C("threads"),
) -> None:
    """Baselines from the run's dense checkpoint at the OFB subnet's MACs and the same epochs (RUN's compare)."""
    from ofb_deploy.compare import compare_run  # lazy: keeps --help from importing torch

    config = CompareConfig(seeds=seeds, methods=methods, batches=parse_batches(batch), threads=threads)
    run = RunDir(run_dir)
    doc = compare_run(run, config)
    console.print(compare_table(doc))
    beats = doc["checks"]["ofb_at_or_above"]
    console.print("OFB at or above: " + ", ".join(f"{m} {'yes' if ok else 'NO'}" for m, ok in beats.items()))
    if doc["checks"].get("equal_latency"):
        console.print(_latency_line(doc["checks"]["equal_latency"]))
    console.print(f"results -> {run.compare_json}")


def sweep_table(doc: dict) -> Table:
    """One row per target and method: MACs share, top-1 and ORT CPU latency per batch."""
    batches = [str(b) for b in doc["latency"]["batches"]]
    table = Table(title=f"sweep: OFB vs keep-embed uniform, {doc['budget_epochs']} epochs each (ORT CPU latency, ms)")
    for name in ("target", "method", "% MACs", "top-1", *[f"b{b}" for b in batches]):
        table.add_column(name, justify="right")
    for r in doc["rows"]:
        lat = [f"{r['latency_ms'][b]:.3f}" for b in batches]
        table.add_row(r["target"], r["method"], f"{100 * r['flops_ratio']:.1f}", f"{r['top1']:.2f}", *lat)
    return table


@app.command("sweep")
def sweep_cli(
    run_dir: RunArg,
    target_flops: Annotated[str, typer.Option(help="Comma-separated FLOPs targets (0.3,0.5,0.7 or 800M,...).")],
    batch: Annotated[str, typer.Option(help=_HELP_BATCH)] = ",".join(map(str, C("batches"))),
    threads: Annotated[int | None, typer.Option(help="ORT CPU threads.")] = C("threads"),
) -> None:
    """A searched, fine-tuned subnet per FLOPs target, with keep-embed uniform widths at each (RUN's sweep)."""
    from ofb_deploy.compare import sweep_run  # lazy: keeps --help from importing torch

    config = CompareConfig(batches=parse_batches(batch), threads=threads)
    run = RunDir(run_dir)
    targets = [t.strip() for t in target_flops.split(",") if t.strip()]
    doc = sweep_run(run, targets, config)
    console.print(sweep_table(doc))
    console.print(f"results -> {run.sweep_json}")
