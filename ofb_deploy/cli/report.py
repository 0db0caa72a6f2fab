"""``ofb-deploy report``: render report.json, report.md and the plots of a validated run again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ofb_deploy.cli._app import app, console


@app.command("report")
def report_cli(
    run_dir: Annotated[Path, typer.Argument(help="Run directory whose validate stage is done.")],
    plots: Annotated[bool, typer.Option(help="Draw the PNG plots too.")] = True,
) -> None:
    """Write RUN/report/report.json (schema: docs/report_schema.md), report.md and PNG plots."""
    from ofb_deploy.pipeline import RunDir
    from ofb_deploy.validate.report import render_report, report_files

    run = RunDir(run_dir)
    doc = render_report(run, plots=plots)
    for name, check in doc["targets"].items():
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        value = check["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        console.print(f"{mark} {name}: {shown} (limit {check['limit']})")
    for path in report_files(run):
        console.print(f"wrote {path}")
