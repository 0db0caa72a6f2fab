"""`ofb-deploy run`: config layering, stage skipping, resuming, --from/--until, and the quick preset end to end."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import yaml

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.pipeline.config import load_config, parse_set
from ofb_deploy.pipeline.run import run_pipeline
from ofb_deploy.utils.io import read_json

ALL_STAGES = ("train", "search", "slice", "finetune", "export", "build", "validate", "report")


def test_presets_load_and_validate() -> None:
    default, quick = load_config("default"), load_config("quick")
    assert default.model.startswith("vit_fmnist_") and default.search.target_flops == "0.5"
    assert default.out == "runs/default" and quick.out == "runs/quick"
    assert default.targets.max_flops_ratio <= 0.55
    assert quick.train.epochs <= default.train.epochs


def test_layering_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: test_vit\nsearch: {epochs: 9}\nvalidate: {batches: [2]}\n")
    config = load_config("quick", path, parse_set(["search.epochs=3", "finetune.enabled=false"]))
    assert config.model == "test_vit" and config.search.epochs == 3
    assert config.search.target_flops == "0.5"  # kept from the preset: sections merge key by key
    assert config.validate.batches == (2,) and not config.finetune.enabled


def test_a_latency_target_makes_validate_time_the_tables_batch_and_threads() -> None:
    from ofb_deploy.pipeline.run import validate_config

    quick = load_config("quick")  # validates batches 1 and 32 only
    assert validate_config(quick) == quick.validate  # a FLOPs search changes nothing
    latency = load_config("quick", None, parse_set(["search.latency_threads=1", "search.latency_batch=8"]))
    latency = latency.replace(search=latency.search.replace(target_flops=None, target_latency="0.7x"))
    timed = validate_config(latency)
    assert timed.batches == (1, 8, 32) and timed.threads == 1
    pinned = latency.replace(validate=latency.validate.replace(threads=2, batches=(8,)))
    assert validate_config(pinned).threads == 2 and validate_config(pinned).batches == (8,)  # what the user set


def test_engines_cover_the_batches_validate_times_and_a_change_rebuilds_them() -> None:
    from ofb_deploy.pipeline.run import engine_batches, stage_section

    quick = load_config("quick")
    assert engine_batches(quick) == (1, 32)  # the quick preset's validate.batches
    wider = quick.replace(validate=quick.validate.replace(batches=(1, 8, 64)))
    assert engine_batches(wider) == (1, 8, 64)
    assert stage_section(wider, "build") != stage_section(quick, "build")  # new batches: the build runs again
    slower = quick.replace(validate=quick.validate.replace(rounds=9))
    assert stage_section(slower, "build") == stage_section(quick, "build")  # timing alone: the engines stay


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("search: {epoch: 3}\n", "search.epoch = 3: unknown key"),
        ("modle: x\n", "modle = 'x': unknown key"),
        ("train: [1, 2]\n", "train = \\[1, 2\\]: input should be a valid dictionary"),
        ("search: {epochs: 3\n", "malformed YAML"),
        ("validate: {batches: [0]}\n", "validate.batches\\[0\\] = 0: input should be greater than 0"),
        ("build: {backend: x}\n", "build.backend = 'x': unknown key"),
    ],
)
def test_bad_config_files_fail_in_one_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config("quick", path)
    assert main(["run", "--preset", "quick", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()  # nothing is written before the config is valid


def test_bad_stage_names_and_set_items(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        parse_set(["search.epochs"])
    config = load_config("quick")
    with pytest.raises(ConfigError, match="unknown stage"):
        run_pipeline(config, out=tmp_path / "r", from_stage="nope")
    with pytest.raises(ConfigError, match="comes after"):
        run_pipeline(config, out=tmp_path / "r", from_stage="report", until_stage="train")
    assert main(["run", "--preset", "quick", "--until", "nope", "--out", str(tmp_path / "r")]) == 2


@pytest.fixture(scope="module")
def tiny_config(fmnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick preset shrunk to test_vit and a few hundred images; the search stops after 1 of 2 epochs."""
    doc = {
        "model": "test_vit",
        "data": {"root": str(fmnist_root), "train_size": 600, "val_size": 200, "calib_size": 32},
        "train": {"epochs": 1, "batch_size": 64},
        "search": {"epochs": 2, "warmup_epochs": 1, "batch_size": 64, "stop_after_epochs": 1},
        "finetune": {"epochs": 1, "batch_size": 64},
        "export": {"parity_images": 32},
        "build": {"backends": ["ort-cpu"], "precisions": ["fp32"]},
        "validate": {"batches": [1, 4], "warmup_s": 0.01, "min_iters": 3, "min_time_s": 0.02, "rounds": 2},
        "targets": {"max_flops_ratio": 0.6},
    }
    path = tmp_path_factory.mktemp("tiny") / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _statuses(result: dict) -> dict[str, str]:
    return {stage: info["status"].split()[0] for stage, info in result["stages"].items()}


@pytest.mark.slow
def test_interrupted_stage_resumes_then_everything_is_skipped(
    tiny_config: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    # the search stops (resumably) after its first epoch: the pipeline stops with one line
    with pytest.raises(ArtifactError, match="run again to resume"):
        run_pipeline(load_config("quick", tiny_config), out=out)
    run = RunDir(out)
    assert run.is_done("train") and not run.is_done("search") and run.state_file("search").is_file()
    resumed = load_config("quick", tiny_config, parse_set(["search.stop_after_epochs=null"]))
    caplog.set_level(logging.INFO)
    result = run_pipeline(resumed, out=out)
    assert _statuses(result)["train"] == "skipped" and _statuses(result)["search"] == "ran"
    assert "resumed the search after epoch 1" in caplog.text
    assert all(run.is_done(stage) for stage in ALL_STAGES)
    report = read_json(run.report_json_path)
    ratio = report["subnet"]["flops_ratio"]  # a 2-epoch search of test_vit lands near, not at, the target
    assert ratio < 0.9 and report["targets"]["flops_ratio"]["passed"] == (ratio <= 0.6)
    assert set(report["speedup"]) == {"torch", "ort-cpu"} and set(report["speedup"]["ort-cpu"]) == {"1", "4"}
    assert report["subnet"]["sliced_top1"] is not None  # fine-tuned: the sliced model is evaluated too
    assert read_json(run.config_path)["model"] == "test_vit"
    again = run_pipeline(resumed, out=out)
    assert set(_statuses(again).values()) == {"skipped"}


@pytest.mark.slow
def test_changed_settings_and_from_until(tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = load_config("quick", tiny_config, parse_set(["search.stop_after_epochs=null", "search.epochs=1"]))
    run_pipeline(base, out=out)
    run = RunDir(out)
    changed = load_config("quick", tiny_config, parse_set(["search.stop_after_epochs=null", "search.epochs=1",
                                                             "validate.rounds=1"]))  # fmt: skip
    statuses = _statuses(run_pipeline(changed, out=out))
    assert [s for s in ALL_STAGES if statuses[s] == "ran"] == ["validate", "report"]
    statuses = _statuses(run_pipeline(changed, out=out, from_stage="export", until_stage="build"))
    assert statuses == {"train": "kept", "search": "kept", "slice": "kept", "finetune": "kept",
                        "export": "ran", "build": "ran"}  # fmt: skip
    assert not run.is_done("validate") and not run.is_done("report")  # stale results are forgotten
    no_ft = load_config("quick", tiny_config, parse_set(["search.stop_after_epochs=null", "search.epochs=1",
                                                           "finetune.enabled=false"]))  # fmt: skip
    statuses = _statuses(run_pipeline(no_ft, out=out))
    assert statuses["finetune"] == "disabled" and statuses["export"] == "ran"
    assert run.model_dir("subnet") == run.slice_dir


@pytest.mark.slow
def test_quick_preset_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "quick"
    started = time.perf_counter()
    assert main(["run", "--preset", "quick", "--out", str(out)]) == 0
    seconds = time.perf_counter() - started
    run = RunDir(out)
    report = read_json(run.report_json_path)
    assert report["subnet"]["flops_ratio"] <= 0.55
    assert report["speedup"]["ort-cpu"]["32"] > 0 and report["dense"]["latency"]["ort-cpu"]["1"]["p50_ms"] > 0
    assert {e["precision"] for e in report["engines"]} == {"fp32", "int8"}
    assert (run.report_dir / "report.md").is_file() and (run.report_dir / "widths.png").is_file()
    logging.getLogger(__name__).info("quick preset: %.0f s", seconds)


@pytest.mark.slow
def test_given_checkpoint_skips_training(tiny_config: Path, trained_test_vit_dir: Path, tmp_path: Path) -> None:
    config = load_config("quick", tiny_config, {"checkpoint": str(trained_test_vit_dir)})
    result = run_pipeline(config, out=tmp_path / "run", until_stage="train")
    run = RunDir(tmp_path / "run")
    assert list(result["stages"]) == ["train"] and run.stage_record("train")["checkpoint"] == str(trained_test_vit_dir)
    src = (trained_test_vit_dir / "model.safetensors").read_bytes()
    assert (run.dense_dir / "model.safetensors").read_bytes() == src  # the weights, not a new training
    assert not run.is_done("search")
