"""``ofb-deploy profile``: a latency table of a model's search space on one backend, for latency-targeted searches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ofb_deploy.choices import BuildBackend, Precision
from ofb_deploy.cli._app import app, console
from ofb_deploy.timing.config import PROFILE_BATCH, PROFILE_TIMING
from ofb_deploy.utils.io import check_writable_file


@app.command("profile")
def profile_cli(
    model: Annotated[str, typer.Option(help="Registry name (`ofb-deploy models`) or local-dir:PATH.")],
    backend: Annotated[BuildBackend, typer.Option(help="Backend the table is measured on.")] = BuildBackend.ORT_CPU,
    batch: Annotated[int, typer.Option(help="Batch size the parts are timed at.")] = PROFILE_BATCH,
    precision: Annotated[Precision, typer.Option(help="Precision (fp32 only for now).")] = Precision.FP32,
    threads: Annotated[int | None, typer.Option(help="CPU threads.")] = PROFILE_TIMING.threads,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the table to this JSON file.")] = None,
    refresh: Annotated[bool, typer.Option(help="Measure again even when the cache has this table.")] = False,
) -> None:
    """Time each part (stem and head, attention, MLP) over the search space's widths; cached by key."""
    # lazy: keeps --help from importing torch
    from ofb_deploy.models import get_arch_spec
    from ofb_deploy.profile.measure import profile_model

    if json_out is not None:
        check_writable_file(json_out)
    spec = get_arch_spec(model)
    table = profile_model(spec, backend=backend.value, batch=batch, precision=precision.value, threads=threads,
                          refresh=refresh)  # fmt: skip
    if json_out is not None:
        table.save(json_out)
    console.print(
        f"[bold green]profiled[/] {spec.base_model} on {backend.value} at batch {batch}: dense predicted "
        f"{table.predict(spec):.3f} ms (measured {table.fit[0]['measured_ms']:.3f} ms), "
        f"{table.profile_seconds:.0f} s, key {table.digest}" + (f" -> {json_out}" if json_out else "")
    )
