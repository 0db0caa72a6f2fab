"""``ofb-deploy run``: the whole pipeline (train -> search -> slice -> finetune -> export -> build -> validate ->
report) in one run directory, from an embedded preset, a YAML file and command-line overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ofb_deploy.artifacts import RunDir
from ofb_deploy.choices import BuildBackend, Preset, Stage
from ofb_deploy.cli._app import DataRootOpt, app, console
from ofb_deploy.cli.report import print_summary
from ofb_deploy.pipeline.config import load_config
from ofb_deploy.pipeline.run import run_pipeline
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.utils.io import read_json

ConfigOpt = Annotated[Path | None, typer.Option(help="YAML config merged over the preset.")]
PresetOpt = Annotated[Preset, typer.Option(help="Embedded preset to start from.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Any config key: section.key=value (repeatable).")]
_BACKENDS = f"Comma-separated backends to build: auto or {', '.join(BuildBackend.values())} (default: the preset's)."


def overrides(**flags: Any) -> dict[str, Any]:
    """CLI flags to a nested config mapping (``None`` flags are left out; the config models check the values)."""
    paths = {
        "out": ("out",), "model": ("model",), "checkpoint": ("checkpoint",), "data": ("data", "name"),
        "data_root": ("data", "root"), "target_flops": ("search", "target_flops"), "epochs": ("train", "epochs"),
        "search_epochs": ("search", "epochs"), "finetune_epochs": ("finetune", "epochs"),
        "backends": ("build", "backends"), "batch": ("validate", "batches"),
        "target_latency": ("search", "target_latency"), "latency_table": ("search", "latency_table"),
    }  # fmt: skip
    out: dict[str, Any] = {}
    for flag, path in paths.items():
        value = flags.get(flag)
        if value is not None:
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = str(value) if isinstance(value, Path) else value
    if flags.get("target_latency") is not None or flags.get("target_flops") is not None:
        flops = SearchConfig.targets(flags.get("target_flops"), flags.get("target_latency"), None)
        out.setdefault("search", {})["target_flops"] = flops
    if flags.get("no_finetune"):
        out.setdefault("finetune", {})["enabled"] = False
    return out


def stages_table(result: dict) -> Table:
    table = Table(title=f"ofb-deploy run -> {result['run_dir']} ({result['seconds']:.0f} s)")
    for name in ("stage", "status", "seconds"):
        table.add_column(name)
    for stage, info in result["stages"].items():
        table.add_row(stage, info["status"], str(info.get("seconds", "")))
    return table


@app.command("run")
def run_cli(
    config: ConfigOpt = None,
    preset: PresetOpt = Preset.DEFAULT,
    out: Annotated[Path | None, typer.Option(help="Run directory (default: the config's 'out').")] = None,
    from_stage: Annotated[Stage | None, typer.Option("--from", help="Re-run from this stage on.")] = None,
    until_stage: Annotated[Stage | None, typer.Option("--until", help="Stop after this stage.")] = None,
    model: Annotated[str | None, typer.Option(help="Dense model name (`ofb-deploy models`).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Dense weights or 'pretrained'; skips training.")] = None,
    data: Annotated[str | None, typer.Option(help="'fmnist' or an ImageFolder path.")] = None,
    data_root: DataRootOpt = None,
    target_flops: Annotated[str | None, typer.Option(help="Search target: fraction (0.5) or MACs (800M).")] = None,
    target_latency: Annotated[
        str | None,
        typer.Option(help="Latency budget (1.5ms, or 0.6x of dense) on search.latency_backend, latency_batch."),
    ] = None,
    latency_table: Annotated[str | None, typer.Option(help="Latency table from `ofb-deploy profile`.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Dense training epochs.")] = None,
    search_epochs: Annotated[int | None, typer.Option(help="Search epochs.")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(help="Fine-tuning epochs.")] = None,
    no_finetune: Annotated[bool, typer.Option("--no-finetune", help="Skip fine-tuning.")] = False,
    backends: Annotated[str | None, typer.Option(help=_BACKENDS)] = None,
    batch: Annotated[str | None, typer.Option(help="Comma-separated batch sizes to validate.")] = None,
    set_items: SetOpt = None,
) -> None:
    """Run the whole pipeline; finished stages with unchanged inputs are skipped, a killed one resumes."""
    flags = {k: v for k, v in locals().items() if k not in ("config", "preset", "from_stage", "until_stage")}
    cfg = load_config(preset.value, config, overrides(**flags), set_items, check=False)  # run_pipeline checks it
    try:
        first, last = (stage.value if stage else None for stage in (from_stage, until_stage))
        result = run_pipeline(cfg, from_stage=first, until_stage=last)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: run the same command again to resume where it stopped")
        raise typer.Exit(130) from None
    console.print(stages_table(result))
    run = RunDir(result["run_dir"])
    if run.report_json_path.is_file() and "report" in result["stages"]:
        print_summary(read_json(run.report_json_path, "report"))
        console.print(f"report -> {run.report_md_path}")
