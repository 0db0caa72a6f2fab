"""``ofb-deploy report``: render the report (JSON, Markdown, plots) of a validated run again."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markdown import Markdown

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli._app import RunArg, app, console


def print_summary(doc: dict[str, Any]) -> None:
    """The report's main table and the pass/fail of its targets."""
    from ofb_deploy.report.markdown import main_table  # lazy: keeps --help from importing torch

    console.print(Markdown("\n".join(main_table(doc))))
    for name, check in doc["targets"].items():
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        value = check["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        console.print(f"{mark} {name}: {shown} (limit {check['limit']})")


@app.command("report")
def report_cli(
    run_dir: RunArg,
    plots: Annotated[bool, typer.Option(help="Draw the PNG plots too.")] = True,
) -> None:
    """Write the run's report: JSON (schema: docs/report_schema.md), Markdown and PNG plots."""
    from ofb_deploy.report.report import render_report, report_files  # lazy: keeps --help from importing torch

    run = RunDir(run_dir)
    print_summary(render_report(run, plots=plots))
    for path in report_files(run):
        console.print(f"wrote {path}")
