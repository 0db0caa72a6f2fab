"""Swin through the pipeline: the model's own preset settings, the config check that refuses a latency budget,
and the quick preset end to end."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ofb_deploy.artifacts import RunDir
from ofb_deploy.errors import ConfigError
from ofb_deploy.models import count_macs, create_model, get_arch_spec, list_models
from ofb_deploy.slicing import load_subnet


# -- the pipeline ---------------------------------------------------------------------------------------------------
def test_swin_preset_run_config_trains_its_own_dense_model(tmp_path: Path) -> None:
    from ofb_deploy.pipeline.config import load_config

    config = load_config("default", overrides={"model": "swin_fmnist_tiny"}, check=False)
    assert config.checkpoint is None and config.out == "runs/swin_fmnist_tiny"  # no shipped Swin checkpoint
    assert config.train.epochs >= 1 and config.search.align == 16
    assert config.search.target_flops == "0.5" and config.targets.max_flops_ratio <= 0.55
    quick = load_config("quick", sets=["model=swin_fmnist_tiny"], check=False)
    assert quick.out == "runs/quick_swin" and quick.data.train_size == 8000  # the quick caps stay
    path = tmp_path / "mine.yaml"
    path.write_text(f"checkpoint: {tmp_path}\nsearch: {{align: 8}}\n")
    mine = load_config("default", path, {"model": "swin_fmnist_tiny"}, ["finetune.epochs=1"], check=False)
    assert mine.checkpoint == str(tmp_path) and mine.search.align == 8 and mine.finetune.epochs == 1
    assert load_config("quick", check=False).out == "runs/quick"  # other models are untouched


def test_swin_settings_follow_a_checkpoint_that_holds_a_swin(tmp_path: Path) -> None:
    """The model's own settings apply however the model is chosen: named, or read from a checkpoint folder."""
    from ofb_deploy.models import save_model_dir
    from ofb_deploy.pipeline.config import load_config

    dense = save_model_dir(create_model("swin_fmnist_tiny", num_classes=10), tmp_path / "dense")
    config = load_config("default", overrides={"checkpoint": str(dense)}, check=False)
    assert config.model == "swin_fmnist_tiny" and config.search.align == 16
    assert config.checkpoint == str(dense)  # the user's checkpoint wins over the settings' `checkpoint: null`


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default:\n  search: {algin: 16}\n", "default.search.algin = 16: unknown key"),
        ("default:\n  serach: {align: 16}\n", "default.serach = {'align': 16}: unknown key"),
        ("defualt:\n  search: {align: 16}\n", "defualt = {'search': {'align': 16}}: unknown key"),
        ("default:\n  search: {align: sixteen}\n", "default.search.align = 'sixteen'"),
        ("default:\n  model: vit_fmnist_tiny\n", "cannot name another model"),
        ("default: [1, 2\n", "malformed YAML"),
    ],
)
def test_bad_model_settings_fail_with_one_line(tmp_path: Path, monkeypatch, text: str, message: str) -> None:
    from ofb_deploy.pipeline import config as pipeline_config

    path = tmp_path / "swin_fmnist_tiny.yaml"
    path.write_text(text)
    monkeypatch.setattr(pipeline_config, "model_presets_path", lambda model: path)
    with pytest.raises(ConfigError, match=message) as exc:
        pipeline_config.load_config("default", overrides={"model": "swin_fmnist_tiny"}, check=False)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_shipped_model_settings_are_valid_for_every_preset() -> None:
    from ofb_deploy.pipeline.config import PRESETS, PipelineConfig, model_presets_path, preset_dict, read_model_presets

    files = sorted(model_presets_path("swin_fmnist_tiny").parent.glob("*.yaml"))
    assert files, "no model settings shipped"
    for path in files:
        settings = read_model_presets(path)
        assert path.stem in list_models(), f"{path.name} names no registered model"
        for preset in PRESETS:
            PipelineConfig.from_dict(preset_dict(preset)).merged(getattr(settings, preset))


@pytest.mark.slow
def test_swin_quick_preset_end_to_end(tmp_path: Path) -> None:
    import time

    from ofb_deploy.cli import main
    from ofb_deploy.utils.io import read_json

    out = tmp_path / "quick_swin"
    started = time.perf_counter()
    assert main(["run", "--preset", "quick", "--model", "swin_fmnist_tiny", "--out", str(out)]) == 0
    seconds = time.perf_counter() - started
    run = RunDir(out)
    report = read_json(run.report_json_path, "report")
    assert run.report_md_path.is_file()
    arch = read_json(run.arch_path, "search result")
    assert arch["base_model"] == "swin_fmnist_tiny" and len(arch["stage_idx"]) == 3
    assert arch["flops"] <= 0.55 * arch["dense_flops"]
    assert report["targets"]["flops_ratio"]["passed"]
    sub = load_subnet(run.finetune_dir)
    assert sub.spec.family == "swin" and count_macs(sub.spec).total == arch["flops"]
    engines = read_json(run.validate_path, "validation")["engines"]
    ran = {(e["role"], e["backend"], e["precision"]) for e in engines}
    assert {("dense", "ort-cpu", "fp32"), ("subnet", "ort-cpu", "fp32")} <= ran
    assert report["subnet"]["top1"] > 50 and report["dense"]["top1"] > 50
    logging.getLogger(__name__).info("Swin quick preset: %.0f s", seconds)


def test_latency_cost_refuses_a_swin_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ofb_deploy.cli import main
    from ofb_deploy.search.cost import LatencyCost

    spec = get_arch_spec("test_swin")
    with pytest.raises(ConfigError, match="latency tables cover ViT models only") as exc:
        LatencyCost(spec, table=None)
    assert "\n" not in str(exc.value)
    args = ["run", "--preset", "quick", "--model", "swin_fmnist_tiny", "--out", str(tmp_path / "r")]
    assert main([*args, "--target-latency", "1ms"]) != 0  # refused by the config check, before any stage
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "latency tables cover ViT models only" in err
    assert not (tmp_path / "r" / "dense").exists()
