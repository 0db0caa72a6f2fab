"""Config models: one home per default (CLI, presets and API agree), `config show`, merging and one-line errors."""

from __future__ import annotations

import pytest
import typer
import yaml

from ofb_deploy.choices import Backend, Precision, Preset, Stage
from ofb_deploy.cli import main
from ofb_deploy.cli._app import app
from ofb_deploy.errors import ConfigError
from ofb_deploy.finetune.config import FinetuneConfig
from ofb_deploy.pipeline.config import PipelineConfig, load_config
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.train.config import TrainConfig
from ofb_deploy.utils.config import ConfigModel
from ofb_deploy.validate.config import TargetsConfig, ValidateConfig


def _option_defaults(command: str) -> dict[str, object]:
    click_app = typer.main.get_command(app)
    return {p.name: p.default for p in click_app.commands[command].params}


@pytest.mark.parametrize("preset", ["default", "quick"])
def test_presets_run_the_models_defaults_except_where_they_say(preset: str) -> None:
    """One home per setting: every section of the default run is its model's defaults (its targets are the run's
    own acceptance limits), and the quick preset changes only data caps, epochs and timing, never the search."""
    config = load_config(preset, check=False)
    allowed = {"default": {"targets"}, "quick": {"data", "train", "finetune", "export", "build", "validate", "targets"}}
    for name in PipelineConfig.model_fields:
        section = getattr(config, name)
        if isinstance(section, ConfigModel) and name not in allowed[preset]:
            assert section == type(section)(), f"{preset}.{name} differs from {type(section).__name__}'s defaults"


def test_search_cli_defaults_are_the_search_configs() -> None:
    """`ofb-deploy search --help` shows SearchConfig's defaults for every option that names one of its keys."""
    options = _option_defaults("search")
    shared = [k for k in options if k in SearchConfig.model_fields and k != "target_flops"]
    assert len(shared) >= 15
    for key in shared:
        default = SearchConfig.default(key)
        assert options[key] == (default.value if hasattr(default, "value") else default), key


def test_cli_options_read_their_defaults_from_the_models() -> None:
    train, finetune, search = _option_defaults("train"), _option_defaults("finetune"), _option_defaults("search")
    assert (train["epochs"], train["lr"], train["batch_size"]) == (30, 2e-3, 64) == (
        TrainConfig().epochs, TrainConfig().lr, TrainConfig().batch_size)  # fmt: skip
    ft = FinetuneConfig()
    assert (finetune["epochs"], finetune["lr"], finetune["batch_size"]) == (ft.epochs, ft.lr, ft.batch_size)
    assert (ft.epochs, ft.lr, ft.warmup_epochs) == (3, 1e-3, 0.1)  # the default run's fine-tune
    for key in ("epochs", "prune_every", "w_flops", "align"):
        assert search[key] == SearchConfig.default(key), key
    # --target-flops stays unset so --target-latency alone can mean "no MACs budget"; the CLI then fills in
    # the model's default, which its help names.
    assert search["target_flops"] is None and SearchConfig.default("target_flops") is not None
    assert _option_defaults("bench")["min_iters"] == ValidateConfig().min_iters


def test_every_cli_choice_lists_its_values_in_help(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # rich reads it for the help's width: no list wraps
    for argv, choice in ((["build", "--help"], Precision), (["bench", "--help"], Backend),
                         (["run", "--help"], Stage), (["config", "show", "--help"], Preset)):  # fmt: skip
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "<" + "|".join(choice.values()) + ">" in out, (argv, out)


def test_config_show_prints_the_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--preset", "quick", "--set", "search.epochs=3", "--set", "data.val_size=all"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    shown = PipelineConfig.from_dict(doc)
    assert shown == load_config("quick", sets=["search.epochs=3", "data.val_size=all"], check=False)
    assert doc["search"]["epochs"] == 3 and doc["data"]["val_size"] is None and doc["data"]["train_size"] == 8000
    assert doc["train"]["label_smoothing"] == TrainConfig().label_smoothing  # every key, defaults included


def test_layers_merge_section_by_section(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("search: {epochs: 4}\ntargets:\n")
    config = load_config("quick", path, {"search": {"prune_every": 7}}, ["search.epochs=5"], check=False)
    assert (config.search.epochs, config.search.prune_every) == (5, 7)
    assert config.data.train_size == 8000  # the quick preset's, under the file and the flags
    assert config.targets == TargetsConfig()  # `targets:` with nothing under it: no targets


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainConfig(epochs=0), "train.epochs = 0: input should be greater than 0"),
        (lambda: TrainConfig(lr=True), "train.lr = True: expected a number, got a boolean"),
        (lambda: SearchConfig(score_init="best"), "search.score_init = 'best': input should be 'random' or"),
        (lambda: TargetsConfig(min_speedup={"ort-cpu": {"0": 1.2}}), "'0' is not a batch size"),
        (lambda: ValidateConfig(batches="1,,x"), "validate.batches[1] = 'x'"),
        (lambda: FinetuneConfig.from_dict([1]), "finetune: expected a mapping of keys, got list"),
    ],
)
def test_config_errors_name_the_key_the_value_and_what_is_allowed(build, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value) and "\n" not in str(info.value)
