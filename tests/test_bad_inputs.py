"""The bad-input battery: every command, fed what a new user (or a broken disk) gives it, fails the same way.

Each case runs the real CLI in this process and asserts a non-zero exit, exactly one line on stderr (no
traceback, no log chatter before it), that the line says what is wrong, and that the output folder is exactly
as it was (absent if it was absent): no partial artifact. Cases are quick, all before any training.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import random_search

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.models import create_model, save_model_dir
from ofb_deploy.slicing import slice_handwritten

RUN = ["run", "--preset", "quick", "--out", "{tmp}/out"]  # the quick preset into a fresh folder
SLICED, EMPTY, SEARCHED = "{w}/sliced", "{w}/empty_run", "{w}/searched"  # shared run folders
BUNDLE = ["bundle", "{w}/dense", "--out", "{tmp}/out"]  # a bundle of the dense test_vit into a fresh folder


@dataclass(frozen=True)
class Case:
    """argv (``{tmp}`` is the case's folder, ``{w}`` the shared workspace), the expected text, the folder to watch."""

    argv: list[str]
    expect: str
    watch: str = "{tmp}/out"
    code: int | None = None  # a specific exit code, when it matters


class Evil:
    """A pickle payload: unpickling it runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def _images(root: Path, bad: dict[str, bytes] | None = None, empty_class: bool = False) -> Path:
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            if empty_class and split == "train":
                continue
            for i in range(3):
                Image.new("RGB", (20, 20), (60 * i, 30, 90)).save(folder / f"{i}.png")
    for name, blob in (bad or {}).items():
        (root / "train" / "cat" / name).write_bytes(blob)
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, fmnist_root: Path) -> Path:
    """Shared inputs: a dense test_vit folder, image trees, a searched run, a sliced run, a run with bad JSON."""
    w = tmp_path_factory.mktemp("bad_inputs")
    torch.manual_seed(0)
    dense = save_model_dir(create_model("test_vit"), w / "dense")
    save_model_dir(create_model("test_vit", num_classes=5), w / "dense5")
    torch.save({"model": Evil(w / "PWNED")}, w / "evil.pth")
    (w / "zero.safetensors").write_bytes(b"")
    (w / "zero.onnx").write_bytes(b"")
    (w / "notes.txt").write_text("not a model")
    (w / "blocker").write_text("a file where a folder should be")
    shutil.copytree(dense, w / "corrupt_dense")
    (w / "corrupt_dense" / "model.safetensors").write_bytes(b"\x00" * 16)
    _images(w / "zero_image", {"zero.png": b""})
    _images(w / "corrupt_image", {"junk.jpg": b"GIF89a this is not a picture"})
    _images(w / "no_images", empty_class=True)
    (w / "config_list.yaml").write_text("- model\n- out\n")
    (w / "config_malformed.yaml").write_text("search: {epochs: 3\n")
    (w / "config_section.yaml").write_text("train: [1, 2]\n")
    searched = RunDir(w / "searched", create=True)
    random_search(searched, create_model("test_vit").spec)
    arch = json.loads(searched.arch_path.read_text())
    (w / "arch_types.json").write_text(json.dumps({**arch, "embed_dim": "wide"}))
    (w / "arch_blocks.json").write_text(json.dumps({**arch, "blocks": arch["blocks"][:1]}))
    (w / "arch_zero.json").write_bytes(b"")
    broken = RunDir(w / "broken_search", create=True)
    random_search(broken, create_model("test_vit").spec)
    broken.arch_path.write_text(searched.arch_path.read_text()[:-40])
    sliced = RunDir(w / "sliced", create=True)
    shutil.copytree(dense, sliced.dense_dir)
    half = {"embed_dim": 16, "blocks": [{"heads": 1, "head_dim": 16, "mlp_hidden": 32}] * 2}
    (w / "half.json").write_text(json.dumps(half))
    slice_handwritten(w / "half.json", sliced.dense_dir, sliced.slice_dir)
    (w / "empty_run").mkdir()
    fmnist_run = w / "fmnist_run"
    fmnist_run.mkdir()
    (fmnist_run / "run.json").write_text(json.dumps({"data": {"name": "fmnist", "root": str(fmnist_root)}}))
    (w / "list_data_run").mkdir()
    (w / "list_data_run" / "run.json").write_text(json.dumps({"data": ["fmnist"]}))
    (w / "bad_state_run").mkdir()
    (w / "bad_state_run" / "state.json").write_text("{not json")
    (w / "bad_validation").mkdir()
    (w / "bad_validation" / "validate").mkdir()
    (w / "bad_validation" / "validate" / "validate.json").write_text('{"schema_version": 1, "models": ')
    return w


CASES: dict[str, Case] = {
    # -- run: config holes, impossible or inconsistent settings, conflicting flags (all before training) --------
    "run_slice_align_not_an_int": Case([*RUN, "--set", "slice.align=foo"], "slice.align = 'foo'"),
    "run_slice_align_not_allowed": Case([*RUN, "--set", "slice.align=7"], "allowed: 1, 8, 16, 64"),
    "run_opset_not_an_int": Case([*RUN, "--set", "export.opset=hello"], "export.opset = 'hello'"),
    "run_threads_not_an_int": Case([*RUN, "--set", "validate.threads=two"], "validate.threads"),
    "run_target_key_typo": Case(
        [*RUN, "--set", "targets.max_top1_dorp=1"], "unknown key; allowed keys: max_flops_ratio"
    ),
    "run_target_not_a_number": Case([*RUN, "--set", "targets.max_top1_drop=abc"], "targets.max_top1_drop = 'abc'"),
    "run_search_epochs_not_an_int": Case(
        [*RUN, "--set", "search.epochs=abc"], "search.epochs = 'abc': input should be a valid"
    ),
    "run_unknown_latency_backend": Case(
        [*RUN, "--set", "search.latency_backend=trt"], "search.latency_backend = 'trt': input should be 'ort-cpu'"
    ),
    "run_impossible_flops_ratio": Case([*RUN, "--set", "targets.max_flops_ratio=1.5"], "less than or equal to 1"),
    "run_impossible_flops_target": Case([*RUN, "--target-flops", "0.001"], "smallest subnet"),
    "run_mistaken_fraction": Case([*RUN, "--target-flops", "2"], "a fraction must be in"),
    "run_speedup_at_untimed_batch": Case(
        [*RUN, "--set", "targets.min_speedup.ort-cpu.64=1.2"], "batch 64 is never timed"
    ),
    "run_speedup_of_unbuilt_backend": Case(
        [*RUN, "--set", "targets.min_speedup.ort-cuda.32=1.1"], "ort-cuda fp32 is not built"
    ),
    "run_missing_config_file": Case([*RUN, "--config", "{w}/nope.yaml"], "config file not found"),
    "run_config_not_a_mapping": Case([*RUN, "--config", "{w}/config_list.yaml"], "must hold a mapping"),
    "run_malformed_yaml": Case([*RUN, "--config", "{w}/config_malformed.yaml"], "malformed YAML"),
    "run_section_not_a_mapping": Case([*RUN, "--config", "{w}/config_section.yaml"], "train = [1, 2]"),
    "run_model_conflicts_with_checkpoint": Case(
        [*RUN, "--model", "vit_fmnist_small", "--checkpoint", "{w}/dense"], "conflicts with the"
    ),
    "run_pickle_checkpoint": Case(
        [*RUN, "--model", "test_vit", "--checkpoint", "{w}/evil.pth"], "cannot read checkpoint"
    ),
    "run_pretrained_and_checkpoint": Case(
        [*RUN, "--set", "pretrained=true", "--checkpoint", "{w}/dense"], "set one of them"
    ),
    "run_unknown_stage": Case([*RUN, "--from", "nope"], "'nope' is not one of 'train'"),
    "run_from_after_until": Case([*RUN, "--from", "report", "--until", "train"], "comes after"),
    "run_missing_backend": Case([*RUN, "--backends", "tensorrt"], "cannot build tensorrt", code=5),
    "run_unknown_model": Case([*RUN, "--model", "resnet9000"], "unknown model"),
    "run_missing_data_folder": Case([*RUN, "--data", "{tmp}/nowhere"], "data folder not found"),
    "run_malformed_state": Case(
        ["run", "--preset", "quick", "--out", "{w}/bad_state_run"], "malformed run state", "{w}/bad_state_run"
    ),
    "run_unwritable_out": Case(
        ["run", "--preset", "quick", "--out", "{w}/blocker/run"], "cannot create output directory", "{w}/blocker"
    ),
    # -- config show -------------------------------------------------------------------------------------------
    "config_show_bad_set": Case(["config", "show", "--set", "search.epochs=abc"], "search.epochs = 'abc'"),
    "config_show_bad_set_item": Case(["config", "show", "--set", "search.epochs"], "SECTION.KEY=VALUE"),
    "config_show_unknown_preset": Case(["config", "show", "--preset", "nope"], "'nope' is not one of 'default'"),
    # -- train ----------------------------------------------------------------------------------------------------
    "train_unknown_model": Case(["train", "{tmp}/out", "--model", "resnet9000"], "unknown model"),
    "train_zero_byte_image": Case(
        ["train", "{tmp}/out", "--model", "test_vit_rgb", "--data", "{w}/zero_image"],
        "zero.png is not a readable image",
    ),
    "train_corrupt_image": Case(
        ["train", "{tmp}/out", "--model", "test_vit_rgb", "--data", "{w}/corrupt_image"], "junk.jpg is not a readable"
    ),
    "train_class_without_images": Case(
        ["train", "{tmp}/out", "--model", "test_vit_rgb", "--data", "{w}/no_images"], "holds no readable images"
    ),
    "train_missing_data_root": Case(
        ["train", "{tmp}/out", "--model", "test_vit", "--data-root", "{tmp}/nowhere"], "dataset-fashion-mnist"
    ),
    "train_zero_byte_checkpoint": Case(
        ["train", "{tmp}/out", "--model", "test_vit", "--checkpoint", "{w}/zero.safetensors"], "cannot read checkpoint"
    ),
    "train_pickle_checkpoint": Case(
        ["train", "{tmp}/out", "--model", "test_vit", "--checkpoint", "{w}/evil.pth"], "cannot read checkpoint"
    ),
    "train_unwritable_output": Case(
        ["train", "{w}/blocker/run", "--model", "test_vit"], "is a file", watch="{w}/blocker"
    ),
    "train_zero_epochs": Case(["train", "{tmp}/out", "--model", "test_vit", "--epochs", "0"], "train.epochs = 0"),
    "train_epochs_not_an_int": Case(["train", "{tmp}/out", "--model", "test_vit", "--epochs", "abc"], "'--epochs'"),
    "train_other_data_than_the_run": Case(
        ["train", "{w}/fmnist_run", "--model", "test_vit", "--data", "{w}/zero_image"],
        "conflicts with the run's data",
        watch="{w}/fmnist_run",
    ),  # fmt: skip
    # -- search ---------------------------------------------------------------------------------------------------
    "search_without_dense_model": Case(["search", "{tmp}/out"], "dense checkpoint not found"),
    "search_model_conflicts_with_checkpoint": Case(
        ["search", "{tmp}/out", "--model", "vit_fmnist_small", "--checkpoint", "{w}/dense"], "which holds test_vit"
    ),
    "search_weights_without_model": Case(
        ["search", "{tmp}/out", "--checkpoint", "{w}/dense/model.safetensors"], "pass --model NAME"
    ),
    "search_mistaken_fraction": Case(["search", "{tmp}/out", "--target-flops", "2.0"], "a fraction must be in (0, 1]"),
    "search_unknown_score_init": Case(["search", "{tmp}/out", "--score-init", "best"], "'best' is not one of"),
    "search_run_json_data_not_a_mapping": Case(
        ["search", "{w}/list_data_run"], "'data' must be a mapping", watch="{w}/list_data_run"
    ),
    # -- slice ------------------------------------------------------------------------------------------------------
    "slice_without_search": Case(["slice", EMPTY], "run `ofb-deploy search` first", watch=EMPTY),
    "slice_malformed_search_result": Case(
        ["slice", "{w}/broken_search"], "malformed search result", watch="{w}/broken_search"
    ),
    "slice_arch_wrong_type": Case(
        ["slice", "{tmp}/out", "--arch", "{w}/arch_types.json", "--checkpoint", "{w}/dense"], "embed_dim = 'wide'"
    ),
    "slice_arch_inconsistent_depth": Case(
        ["slice", "{tmp}/out", "--arch", "{w}/arch_blocks.json", "--checkpoint", "{w}/dense"], "needs 2 entries"
    ),
    "slice_arch_zero_byte": Case(
        ["slice", "{tmp}/out", "--arch", "{w}/arch_zero.json", "--checkpoint", "{w}/dense"], "malformed arch file"
    ),
    "slice_align_not_allowed": Case(["slice", SEARCHED, "--align", "7"], "allowed: 1, 8, 16, 64", watch=SEARCHED),
    "slice_checkpoint_without_arch": Case(
        ["slice", SEARCHED, "--checkpoint", "{w}/dense"], "go with --arch", watch=SEARCHED
    ),
    # -- finetune ---------------------------------------------------------------------------------------------------
    "finetune_without_slice": Case(["finetune", EMPTY], "run `ofb-deploy slice` first", watch=EMPTY),
    "finetune_teacher_of_other_classes": Case(
        ["finetune", SLICED, "--teacher", "{w}/dense5"], "num_classes", watch=SLICED
    ),
    "finetune_impossible_alpha": Case(["finetune", SLICED, "--alpha", "2"], "finetune.alpha", watch=SLICED),
    # -- export -----------------------------------------------------------------------------------------------------
    "export_run_without_models": Case(["export", EMPTY], "has no dense/ or slice/ model", watch=EMPTY),
    "export_opset_too_old": Case(["export", "{w}/dense", "--opset", "9", "--out", "{tmp}/out"], "export.opset = 9"),
    "export_out_for_a_run": Case(["export", SLICED, "--out", "{tmp}/out"], "--out applies to a model folder"),
    "export_corrupt_weights": Case(["export", "{w}/corrupt_dense", "--out", "{tmp}/out"], "cannot read checkpoint"),
    # -- build ------------------------------------------------------------------------------------------------------
    "build_missing_backend": Case(["build", SLICED, "--backend", "tensorrt"], "cannot build tensorrt", SLICED, 5),
    "build_unknown_backend": Case(["build", SLICED, "--backend", "nope"], "'nope' is not one of", SLICED),
    "build_without_export": Case(["build", SLICED], "run `ofb-deploy export", watch=SLICED),
    "build_bad_batch": Case(["build", SLICED, "--batch", "1,x"], "--batch = '1,x'", watch=SLICED),
    "build_rtx_targets_for_ort": Case(
        ["build", SLICED, "--compute-capability", "sm89"], "tensorrt-rtx only", watch=SLICED
    ),
    # -- bench ------------------------------------------------------------------------------------------------------
    "bench_missing_target": Case(["bench", "{tmp}/nothing.onnx"], "benchmark target not found"),
    "bench_not_a_model": Case(["bench", "{w}/notes.txt"], "expected a model folder"),
    "bench_zero_byte_onnx": Case(["bench", "{w}/zero.onnx"], "cannot load"),
    "bench_unwritable_json": Case(
        ["bench", "{w}/dense", "--json", "{w}/blocker/b.json"], "is a file", watch="{w}/blocker"
    ),
    "bench_unknown_backend": Case(["bench", "{w}/dense", "--backend", "nope"], "'nope' is not one of 'torch'"),
    # -- validate, report -------------------------------------------------------------------------------------------
    "validate_missing_run": Case(["validate", "{tmp}/out"], "run directory not found"),
    "validate_zero_batch": Case(["validate", SLICED, "--batch", "0"], "greater than 0", watch=SLICED),
    "validate_unknown_backend": Case(["validate", SLICED, "--backends", "nope"], "validate.backends[0]", SLICED),
    "validate_val_size_not_a_count": Case(["validate", SLICED, "--val-size", "some"], "val_size", SLICED),
    "report_not_validated": Case(["report", EMPTY], "ofb-deploy validate", watch=EMPTY),
    "report_malformed_validation": Case(["report", "{w}/bad_validation"], "malformed", watch="{w}/bad_validation"),
    # -- compare, sweep ---------------------------------------------------------------------------------------------
    "compare_missing_run": Case(["compare", "{tmp}/out"], "run directory not found"),
    "compare_seeds_not_ints": Case(["compare", SLICED, "--seeds", "a,b"], "compare.seeds[0] = 'a'", SLICED),
    "compare_unknown_method": Case(
        ["compare", SLICED, "--methods", "prune-all"], "'ofb', 'uniform-keep-embed'", SLICED
    ),
    "sweep_repeated_target": Case(["sweep", SLICED, "--target-flops", "0.5,0.5"], "distinct", watch=SLICED),
    # -- bundle, export --quantizer -------------------------------------------------------------------------------
    "bundle_unknown_target": Case([*BUNDLE, "--target", "jetson-nano"], "unknown jetson-nano"),
    "bundle_two_device_targets": Case([*BUNDLE, "--target", "jetson-jp6,rtx"], "names 2 device targets"),
    "bundle_layout_without_target": Case([*BUNDLE, "--target", "triton"], "names 0 device targets"),
    "bundle_fp32": Case([*BUNDLE, "--target", "rtx", "--precision", "fp32"], "--precision 'fp32'"),
    "bundle_unknown_quantizer": Case([*BUNDLE, "--target", "rtx", "--quantizer", "best"], "--quantizer 'best'"),
    "bundle_modelopt_for_trt85": Case(
        [*BUNDLE, "--target", "jetson-jp5", "--precision", "int8", "--quantizer", "modelopt"], "does not parse"
    ),
    "bundle_bad_batch": Case([*BUNDLE, "--target", "rtx", "--batch", "1,x"], "--batch = '1,x'"),
    "bundle_zero_golden_images": Case([*BUNDLE, "--target", "rtx", "--golden-images", "0"], "at least 1"),
    "bundle_without_out": Case(["bundle", "{w}/dense", "--target", "rtx"], "give RUN"),
    "bundle_missing_run": Case(["bundle", "{tmp}/nowhere", "--target", "rtx", "--out", "{tmp}/out"], "not found"),
    "bundle_run_without_subnet": Case(["bundle", EMPTY, "--target", "rtx", "--out", "{tmp}/out"], "no subnet model"),
    "bundle_out_not_empty": Case(
        ["bundle", "{w}/dense", "--target", "rtx", "--out", SLICED], "is not empty", watch=SLICED
    ),
    "export_unknown_quantizer": Case(
        ["export", "{w}/dense", "--int8", "--quantizer", "trt", "--out", "{tmp}/out"], "'trt' is not one of"
    ),
}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    if not folder.exists():
        return None
    if folder.is_file():
        return {folder.name: (folder.stat().st_size, folder.stat().st_mtime_ns)}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _fill(text: str, tmp: Path, w: Path) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{w}", str(w))


def test_the_battery_has_at_least_35_cases_across_every_command() -> None:
    commands = {case.argv[0] for case in CASES.values()}
    assert len(CASES) >= 35
    assert commands >= {"run", "config", "train", "search", "slice", "finetune", "export", "build", "bench",
                        "validate", "report", "compare", "sweep", "bundle"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_with_one_line_and_leaves_nothing(
    name: str, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    argv = [_fill(a, tmp_path, workspace) for a in case.argv]
    watched = Path(_fill(case.watch, tmp_path, workspace))
    before = _snapshot(watched)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, err
    assert case.code is None or code == case.code, (code, err)
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert _fill(case.expect, tmp_path, workspace) in lines[0], lines[0]
    assert _snapshot(watched) == before, f"{watched} changed"
    assert not (workspace / "PWNED").exists()  # the pickle payload was never run


def test_skip_bad_images_trains_on_the_readable_ones(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["train", str(run), "--model", "test_vit_rgb", "--data", str(workspace / "corrupt_image"), "--epochs", "1"]
    assert main([*args, "--batch-size", "2", "--skip-bad-images"]) == 0
    assert "skipped 1 unreadable image(s)" in capsys.readouterr().err
    assert json.loads((run / "run.json").read_text())["data"]["skip_bad_images"] is True
    assert RunDir(run).is_done("train")


def test_the_pickle_payload_works_when_unpickled(workspace: Path, tmp_path: Path) -> None:
    """The payload is real: a plain unpickler runs it (so the battery's refusal is what keeps it from running)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()
