"""``ofb-deploy config show``: the pipeline config a ``run`` would use, resolved from preset, file and ``--set``."""

from __future__ import annotations

import typer
import yaml

from ofb_deploy.choices import Preset
from ofb_deploy.cli._app import app, console
from ofb_deploy.cli.run import ConfigOpt, PresetOpt, SetOpt
from ofb_deploy.pipeline.config import load_config

config_app = typer.Typer(help="Inspect the pipeline config.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show_cli(config: ConfigOpt = None, preset: PresetOpt = Preset.DEFAULT, set_items: SetOpt = None) -> None:
    """Print the resolved config as YAML: every key of every section, defaults included (nothing is run)."""
    resolved = load_config(preset.value, config, sets=set_items, check=False)
    console.print(yaml.safe_dump(resolved.to_dict(), sort_keys=False).rstrip(), highlight=False, markup=False)
