"""``ofb-deploy bundle``: a folder an edge GPU builds, checks and runs its own engine from (``--list``: targets)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ofb_deploy.bundle.make import BundleConfig, make_bundle
from ofb_deploy.bundle.targets import target_table
from ofb_deploy.cli._app import app, console
from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.config import parse_batches

# one home: the options' defaults are BundleConfig's
_DEFAULT = {f.name: f.default for f in dataclasses.fields(BundleConfig)}
TARGET_HELP = (
    "Device target (jetson-jp5, jetson-jp6, jetson-jp7, x86-trt10, x86-trt11, rtx), plus any of the layouts "
    "triton and deepstream, comma-separated: e.g. jetson-jp6,triton,deepstream."
)


def _print_targets() -> None:
    rows = target_table()
    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*(escape(v) for v in row.values()))
    console.print(table)


@app.command("bundle")
def bundle_cli(
    source: Annotated[Path | None, typer.Argument(help="Run directory, or a model folder.", show_default=False)] = None,
    target: Annotated[str | None, typer.Option(help=TARGET_HELP, show_default=False)] = None,
    precision: Annotated[str, typer.Option(help="fp16 or int8 (the engine's precision).")] = _DEFAULT["precision"],
    batch: Annotated[str, typer.Option(help="Batch sizes the engine profile covers (min, opt, max).")] = ",".join(
        str(b) for b in _DEFAULT["batches"]
    ),
    out: Annotated[Path | None, typer.Option(help="Bundle folder to write (new or empty).", show_default=False)] = None,
    role: Annotated[str, typer.Option(help="Model of a run directory: subnet or dense.")] = _DEFAULT["role"],
    quantizer: Annotated[str, typer.Option(help="INT8: auto (ModelOpt where it applies), ort or modelopt.")] = _DEFAULT[
        "quantizer"
    ],
    golden_images: Annotated[int, typer.Option(help="Validation images check.py runs on.")] = _DEFAULT["golden_images"],
    workspace: Annotated[int, typer.Option(help="TensorRT workspace limit build.sh uses, in MiB.")] = _DEFAULT[
        "workspace_mib"
    ],
    list_: Annotated[bool, typer.Option("--list", help="Show each target's TensorRT, ONNX form, precisions.")] = False,
) -> None:
    """Write a deployment bundle: target-form ONNX, INT8 artifacts, build.sh, run.py, check.py, golden data."""
    if list_:
        return _print_targets()
    if source is None or target is None or out is None:
        raise ConfigError("give RUN (or a model folder), --target and --out; or --list to see the targets")

    config = BundleConfig(
        target, precision, parse_batches(batch), role, quantizer, golden_images, workspace_mib=workspace
    )
    doc = make_bundle(source, out, config)
    total = sum(f["bytes"] for f in doc["files"].values())
    console.print(f"wrote {escape(str(out))}: {doc['spelling']} {doc['precision']}, {len(doc['files'])} files, "
                  f"{total / 1e6:.2f} MB; top-1 here (ORT CPU): {doc['top1_ort_cpu']}")  # fmt: skip
    for mode, plan in doc["plans"].items():
        console.print(f"{mode}: {escape(plan['dry_run'])}", soft_wrap=True, highlight=False)
