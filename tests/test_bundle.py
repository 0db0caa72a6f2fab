"""``ofb-deploy bundle``: every target writes its bundle; build.sh's command is valid for the target's TensorRT;
check.py passes on ONNX Runtime and fails in one line on a corrupt file; Triton/DeepStream configs parse; the rtx
bundle's build.sh builds an engine with the TensorRT-RTX installed here.

Bundles are made once per module from the trained ``test_vit`` (real Fashion-MNIST, real ONNX Runtime, ModelOpt
where installed). The trtexec flag tables below are written from NVIDIA's trtexec option parser of each release
(``samples/common/sampleOptions.cpp`` at TensorRT 8.5.2, 10.3.0, 10.13.0 and 11.0, and the release notes quoted in
DEPLOY.md), not from ofb_deploy's own command builder.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer

from ofb_deploy.artifacts import RunDir
from ofb_deploy.bundle.make import BundleConfig
from ofb_deploy.cli import app, main

# -- flags each trtexec release accepts (subset that a build command can use) and flags it removed ----------------
BUILD_FLAGS = {"--onnx", "--saveEngine", "--minShapes", "--optShapes", "--maxShapes", "--memPoolSize",
               "--timingCacheFile", "--shapes", "--verbose", "--noTF32"}  # fmt: skip
TRTEXEC = {
    # 8.5.2: --workspace deprecated (still parsed), --buildOnly (no --skipInference, no --stronglyTyped)
    "8.5": BUILD_FLAGS | {"--workspace", "--fp16", "--int8", "--best", "--calib", "--buildOnly", "--maxBatch",
                          "--precisionConstraints", "--layerPrecisions", "--layerOutputTypes", "--minTiming"},
    # 10.3 / 10.13: --workspace, --batch, --maxBatch, --minTiming, --buildOnly removed; --stronglyTyped added
    "10": BUILD_FLAGS | {"--fp16", "--bf16", "--int8", "--fp8", "--int4", "--best", "--calib", "--stronglyTyped",
                         "--skipInference", "--precisionConstraints", "--layerPrecisions", "--layerOutputTypes",
                         "--builderOptimizationLevel"},
    # 11.0: strongly typed only: --fp16, --int8, --best, --calib and per-layer precisions removed
    "11": BUILD_FLAGS | {"--stronglyTyped", "--skipInference", "--builderOptimizationLevel"},
}  # fmt: skip
REMOVED = {
    "8.5": {"--skipInference", "--stronglyTyped"},
    "10": {"--workspace", "--batch", "--maxBatch", "--minTiming", "--buildOnly", "--explicitBatch"},
    "11": {"--workspace", "--fp16", "--int8", "--best", "--calib", "--buildOnly", "--layerPrecisions"},
}
TRT_OF = {"jetson-jp5": "8.5", "jetson-jp6": "10", "jetson-jp7": "10", "x86-trt10": "10", "x86-trt11": "11"}

# (target, precision, quantizer): every target at fp16, INT8 through both quantizers where they apply
CASES = [
    ("jetson-jp5", "fp16", "auto"),
    ("jetson-jp5", "int8", "auto"),
    ("jetson-jp6,triton,deepstream", "int8", "auto"),
    ("jetson-jp6", "fp16", "auto"),
    ("jetson-jp7", "int8", "ort"),
    ("jetson-jp7,deepstream", "fp16", "auto"),
    ("x86-trt10", "fp16", "auto"),
    ("x86-trt11,triton", "fp16", "auto"),
    ("x86-trt11", "int8", "ort"),
    ("rtx,triton", "fp16", "auto"),
    ("rtx", "int8", "auto"),
]
IDS = [f"{t.replace(',', '+')}-{p}-{q}" for t, p, q in CASES]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRTEXEC", "PYTHON")}
    return {**env, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **extra}


def _script(bundle: Path, name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    cmd = ["bash", str(bundle / name)] if name.endswith(".sh") else [sys.executable, str(bundle / name)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=_env(**env), timeout=300)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, trained_test_vit_dir: Path) -> RunDir:
    """A run directory whose dense model is the trained test_vit (bundles are made of its ``dense`` role)."""
    run = RunDir(tmp_path_factory.mktemp("bundle_run"), create=True)
    shutil.copytree(trained_test_vit_dir, run.dense_dir)
    run.mark_done("train", "fixture")
    return run


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, run: RunDir) -> dict[str, Path]:
    from ofb_deploy.bundle import BundleConfig, make_bundle

    root = tmp_path_factory.mktemp("bundles")
    made = {}
    for case_id, (target, precision, quantizer) in zip(IDS, CASES, strict=True):
        config = BundleConfig(target, precision, (1, 8), "dense", quantizer, golden_images=300, parity_images=64)
        make_bundle(run.root, root / case_id, config)
        made[case_id] = root / case_id
    return made


def _manifest(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


def test_list_names_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("jetson-jp5", "jetson-jp6", "jetson-jp7", "x86-trt10", "x86-trt11", "rtx", "triton", "deepstream"):
        assert name in out
    for version in ("8.5.2", "10.3", "10.13", "11.0"):
        assert version in out


@pytest.mark.slow
@pytest.mark.parametrize("case_id", IDS)
def test_every_target_writes_its_bundle(bundles: dict[str, Path], case_id: str) -> None:
    bundle = bundles[case_id]
    doc = _manifest(bundle)
    for name in ("build.sh", "build_engine.py", "run.py", "check.py", "README.md", "golden/inputs.npz"):
        assert (bundle / name).is_file(), name
    assert os.access(bundle / "build.sh", os.X_OK)
    from ofb_deploy.utils.io import sha256_file

    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(doc["files"]) == on_disk
    for rel, entry in doc["files"].items():
        assert sha256_file(bundle / rel) == entry["sha256"], rel
    assert doc["arch"]["base_model"] == "test_vit" and doc["macs"] > 0
    assert doc["precision"] in doc["top1_ort_cpu"] and set(doc["top1_ort_cpu"]) <= {"fp32", "fp16", "int8"}
    assert all(40 < v <= 100 for v in doc["top1_ort_cpu"].values()), doc["top1_ort_cpu"]
    assert sum(f["bytes"] for f in doc["files"].values()) < 5_000_000
    assert not list(bundle.parent.glob(f".{bundle.name}.*"))  # no staging folder left behind
    if doc["precision"] == "int8":
        assert doc["quantization"]["qdq_nodes"] > 0
        installed = importlib.util.find_spec("modelopt") is not None  # auto falls back to ORT without it
        expect = "modelopt" if installed and doc["target"]["modelopt"] and case_id.endswith("auto") else "ort"
        assert doc["quantization"]["quantizer"] == expect
        assert (bundle / "calib.cache").is_file() == doc["target"]["calib_cache"]


def _command(bundle: Path, *args: str) -> list[str]:
    proc = _script(bundle, "build.sh", "--dry-run", *args)
    assert proc.returncode == 0, proc.stderr
    lines = _lines(proc.stdout)
    assert len(lines) == 1, proc.stdout
    return lines[0].split()


@pytest.mark.slow
@pytest.mark.parametrize("case_id", [i for i in IDS if not i.startswith("rtx")])
def test_dry_run_command_is_valid_for_the_targets_tensorrt(bundles: dict[str, Path], case_id: str) -> None:
    import onnx

    bundle = bundles[case_id]
    doc = _manifest(bundle)
    version = TRT_OF[doc["target"]["name"]]
    modes = [[]] + ([["--implicit-int8"]] if "int8-implicit" in doc["plans"] else [])
    for extra in modes:
        words = _command(bundle, *extra)
        assert Path(words[0]).name == "trtexec"
        flags = {w.split("=", 1)[0] for w in words[1:]}
        assert flags <= TRTEXEC[version], flags - TRTEXEC[version]
        assert not flags & REMOVED[version], flags & REMOVED[version]
        assert {"--onnx", "--saveEngine", "--minShapes", "--optShapes", "--maxShapes", "--timingCacheFile"} <= flags
        assert any(w.startswith("--memPoolSize=workspace:") for w in words)
        assert ("--buildOnly" if version == "8.5" else "--skipInference") in flags
        shapes = {w.split("=")[0]: w.split(":")[-1] for w in words if "Shapes=" in w}
        assert shapes == {"--minShapes": "1x1x16x16", "--optShapes": "8x1x16x16", "--maxShapes": "8x1x16x16"}
        assert not ({"--stronglyTyped"} <= flags and flags & {"--int8", "--fp16"})
        if version == "11":
            assert not flags & {"--fp16", "--int8", "--calib", "--best"}
        elif doc["precision"] == "fp16":
            assert flags & {"--fp16", "--stronglyTyped"}
        else:
            assert "--int8" in flags or "--stronglyTyped" in flags
            assert ("--calib" in flags) == bool(extra)
        proto = onnx.load(next(w.split("=", 1)[1] for w in words if w.startswith("--onnx=")))
        ops = {n.op_type for n in proto.graph.node}
        opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        if version == "8.5":
            assert "LayerNormalization" not in ops and opset < 17
            assert any(w.startswith("--layerPrecisions=") and w.count(":fp32") >= 9 for w in words)
        else:
            assert "LayerNormalization" in ops
        if "--stronglyTyped" in flags or version == "11":
            dtypes = {i.data_type for i in proto.graph.initializer}
            assert dtypes & {onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8}  # the precision is in the ONNX


@pytest.mark.slow
def test_jetson_jp5_onnx_is_decomposed_and_passes_parity(bundles: dict[str, Path]) -> None:
    import onnx

    doc = _manifest(bundles["jetson-jp5-fp16-auto"])
    proto = onnx.load(str(bundles["jetson-jp5-fp16-auto"] / "model.onnx"))
    assert not [n for n in proto.graph.node if n.op_type == "LayerNormalization"]
    assert {n.op_type for n in proto.graph.node} >= {"ReduceMean", "Sqrt", "Div"}
    parity = doc["onnx"]["onnx"]["parity"]
    assert parity["passed"] and parity["top1_agreement"] == 1.0 and parity["max_abs"] < 1e-3
    assert doc["onnx"]["onnx"]["opset"] == 16


@pytest.mark.slow
def test_rtx_dry_run_uses_the_python_builder(bundles: dict[str, Path]) -> None:
    for case_id in ("rtx+triton-fp16-auto", "rtx-int8-auto"):
        words = _command(bundles[case_id])
        assert words[:2] == [sys.executable, str(bundles[case_id] / "build_engine.py")]
        assert words[words.index("--library") + 1] == "tensorrt_rtx" and "--strongly-typed" in words
        assert words[words.index("--profile") + 1] == "1,8,8"
        assert not {"--fp16", "--int8", "--calib"} & set(words)


@pytest.mark.slow
@pytest.mark.parametrize("case_id", ["rtx+triton-fp16-auto", "rtx-int8-auto"])
def test_rtx_build_sh_builds_an_engine_here(bundles: dict[str, Path], case_id: str, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt_rtx")
    bundle = shutil.copytree(bundles[case_id], tmp_path / "b")
    proc = _script(bundle, "build.sh")
    assert proc.returncode == 0, proc.stderr
    engine = bundle / "engine" / "model.plan"
    assert engine.stat().st_size > 10_000
    sidecar = json.loads((bundle / "engine" / "model.plan.json").read_text())
    assert sidecar["library"] == "tensorrt_rtx" and sidecar["builder"] == "python"
    assert sidecar["mode"] == _manifest(bundle)["precision"] and sidecar["profile"] == {"min": 1, "opt": 8, "max": 8}
    assert not list((bundle / "engine").glob(".*tmp*"))


@pytest.mark.slow
@pytest.mark.parametrize("case_id", IDS)
def test_check_passes_on_ort_cpu(bundles: dict[str, Path], case_id: str) -> None:
    proc = _script(bundles[case_id], "check.py", "--backend", "ort-cpu")
    assert proc.returncode == 0, proc.stderr
    assert "check passed on 300 golden images" in proc.stdout


def _copy(bundles: dict[str, Path], tmp_path: Path, case_id: str = "jetson-jp6+triton+deepstream-int8-auto") -> Path:
    return shutil.copytree(bundles[case_id], tmp_path / "b")


def _one_line_failure(proc: subprocess.CompletedProcess, *expect: str) -> None:
    lines = _lines(proc.stderr)
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for text in expect:
        assert text in lines[0], lines[0]


@pytest.mark.slow
def test_check_fails_in_one_line_on_a_corrupt_onnx(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles, tmp_path)
    blob = (bundle / "model.int8.onnx").read_bytes()
    (bundle / "model.int8.onnx").write_bytes(blob[: len(blob) // 3])
    _one_line_failure(_script(bundle, "check.py", "--backend", "ort-cpu"), "model.int8.onnx", "manifest.json")
    _one_line_failure(_script(bundle, "check.py", "--backend", "ort-cpu", "--no-verify"), "cannot load")


@pytest.mark.slow
def test_check_fails_in_one_line_on_a_wrong_golden_file(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles, tmp_path)
    other = bundles["jetson-jp5-fp16-auto"] / "golden" / "reference.npy"
    np.save(bundle / "golden" / "labels.npy", np.zeros(7, np.int64))
    _one_line_failure(_script(bundle, "check.py", "--backend", "ort-cpu"), "golden/labels.npy", "manifest.json")
    _one_line_failure(_script(bundle, "check.py", "--backend", "ort-cpu", "--no-verify"), "wrong golden file")
    labels = np.load(bundles["jetson-jp5-fp16-auto"] / "golden" / "labels.npy")
    np.save(bundle / "golden" / "labels.npy", np.roll(labels, 1))  # right shape, wrong labels
    shutil.copyfile(other, bundle / "golden" / "reference.npy")
    _one_line_failure(_script(bundle, "check.py", "--backend", "ort-cpu", "--no-verify"), "check failed", "top-1")


@pytest.mark.slow
def test_check_on_tensorrt_without_an_engine_is_one_line(bundles: dict[str, Path]) -> None:
    _one_line_failure(_script(bundles["x86-trt10-fp16-auto"], "check.py", "--backend", "tensorrt"))


@pytest.mark.slow
def test_run_times_ort_cpu_with_percentiles(bundles: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "lat.json"
    args = ["--backend", "ort-cpu", "--batch", "1,8", "--warmup", "0", "--seconds", "0.05", "--iters", "3"]
    proc = _script(bundles["x86-trt11+triton-fp16-auto"], "run.py", *args, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    for batch in ("1", "8"):
        entry = doc["latency_ms"][batch]
        assert entry["iters"] >= 3 and entry["min"] <= entry["median"] <= entry["p99"] <= entry["max"]
        assert entry["throughput"] > 0


@pytest.mark.slow
def test_triton_configs_parse_with_tritonclient(bundles: dict[str, Path]) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    seen = 0
    for bundle in bundles.values():
        for path in (bundle / "triton").glob("*/config.pbtxt"):
            config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
            rtx = _manifest(bundle)["target"]["library"] == "tensorrt_rtx"
            assert config.name == path.parent.name
            assert config.platform == ("onnxruntime_onnx" if rtx else "tensorrt_plan")
            assert config.max_batch_size == 8
            assert list(config.input[0].dims) == [1, 16, 16] and list(config.output[0].dims) == [10]
            assert config.HasField("dynamic_batching") and max(config.dynamic_batching.preferred_batch_size) == 8
            assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
            assert (path.parent / "1" / "model.onnx").is_file() == rtx
            assert len((path.parent / "labels.txt").read_text().splitlines()) == 10
            seen += 1
    assert seen == 3


@pytest.mark.slow
def test_deepstream_config_has_the_nvinfer_keys(bundles: dict[str, Path]) -> None:
    import configparser

    from ofb_deploy.models.variants import FMNIST_MEAN, FMNIST_STD

    for case_id, mode in (("jetson-jp6+triton+deepstream-int8-auto", "1"), ("jetson-jp7+deepstream-fp16-auto", "2")):
        bundle = bundles[case_id]
        parser = configparser.ConfigParser()
        parser.read_string((bundle / "deepstream" / "config_infer.txt").read_text())
        prop = parser["property"]
        assert prop["network-mode"] == mode and prop["network-type"] == "1" and prop["batch-size"] == "8"
        assert float(prop["net-scale-factor"]) == pytest.approx(1 / (255 * FMNIST_STD[0]))
        assert float(prop["offsets"]) == pytest.approx(255 * FMNIST_MEAN[0], rel=1e-5)
        assert prop["model-color-format"] == "2" and prop["infer-dims"] == "1;16;16"
        for key in ("onnx-file", "model-engine-file", "labelfile-path"):
            assert key in prop
        assert (bundle / "deepstream" / prop["onnx-file"]).resolve().is_file()
        assert len((bundle / "deepstream" / prop["labelfile-path"]).read_text().strip().split(";")) == 10


@pytest.mark.slow
def test_calibration_cache_names_onnx_tensors(bundles: dict[str, Path]) -> None:
    import onnx

    from ofb_deploy.calibrate.trt_cache import read_trt_calib_cache

    bundle = bundles["jetson-jp6+triton+deepstream-int8-auto"]
    header, ranges = read_trt_calib_cache(bundle / "calib.cache")
    assert header == "TRT-100300-EntropyCalibration2"
    proto = onnx.load(str(bundle / "model.onnx"))
    values = {o for n in proto.graph.node for o in n.output} | {i.name for i in proto.graph.input}
    assert "input" in ranges and set(ranges) <= values and all(v > 0 for v in ranges.values())
    header85, _ = read_trt_calib_cache(bundles["jetson-jp5-int8-auto"] / "calib.cache")
    assert header85 == "TRT-8502-EntropyCalibration2"


def _fake_trtexec(folder: Path, version: str) -> Path:
    """A stand-in for trtexec (absent here): prints its version banner, and writes --saveEngine like a build."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "trtexec"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "&&&& RUNNING TensorRT.trtexec [TensorRT v{version}] # trtexec $*"\n'
        'for a in "$@"; do case "$a" in --saveEngine=*) printf plan > "${a#--saveEngine=}";; esac; done\n'
        'echo "$@" > "$(dirname "$0")/args.txt"\n'
    )
    script.chmod(0o755)
    return script


@pytest.mark.slow
def test_build_sh_refuses_another_tensorrt_in_one_line(bundles: dict[str, Path], tmp_path: Path) -> None:
    jp5, jp6 = bundles["jetson-jp5-fp16-auto"], bundles["jetson-jp6-fp16-auto"]
    trt10 = _fake_trtexec(tmp_path / "t10", "100300")
    right = "jetson-jp6" if platform.machine() == "aarch64" else "x86-trt10"
    _one_line_failure(_script(jp5, "build.sh", TRTEXEC=str(trt10)), "TensorRT 10.3.0", f"--target {right}")
    trt85 = _fake_trtexec(tmp_path / "t85", "8502")
    _one_line_failure(_script(jp6, "build.sh", "--dry-run", TRTEXEC=str(trt85)), "--target jetson-jp5")
    trt11 = _fake_trtexec(tmp_path / "t11", "110000")
    _one_line_failure(_script(jp6, "build.sh", TRTEXEC=str(trt11)), "--target x86-trt11")


@pytest.mark.slow
def test_implicit_int8_build_stamps_the_devices_version(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles, tmp_path)
    trtexec = _fake_trtexec(tmp_path / "t10", "100301")
    proc = _script(bundle, "build.sh", "--implicit-int8", TRTEXEC=str(trtexec))
    assert proc.returncode == 0, proc.stderr
    stamped = (bundle / "engine" / "calib.cache").read_text().splitlines()
    assert stamped[0] == "TRT-100301-EntropyCalibration2"
    assert stamped[1:] == (bundle / "calib.cache").read_text().splitlines()[1:]
    sidecar = json.loads((bundle / "engine" / "model.plan.json").read_text())
    assert sidecar["library_version"] == "10.3.1" and sidecar["mode"] == "int8-implicit"
    assert f"--calib={bundle / 'engine' / 'calib.cache'}" in (trtexec.parent / "args.txt").read_text()
    assert (bundle / "triton").is_dir() and (bundle / "engine" / "model.plan").read_bytes() == b"plan"
    assert (next((bundle / "triton").glob("*/1/model.plan"))).read_bytes() == b"plan"


@pytest.mark.slow
def test_cli_writes_a_bundle_and_a_failure_leaves_nothing(
    run: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b"
    argv = ["bundle", str(run.root), "--role", "dense", "--target", "x86-trt11", "--out", str(out)]
    assert main([*argv, "--golden-images", "50"]) == 0
    assert "trtexec --onnx=$HERE/model.fp16.onnx" in capsys.readouterr().out
    import ofb_deploy.bundle.make as make

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C halfway through: the CLI says "aborted"

    monkeypatch.setattr(make, "_layouts", boom)
    assert main([*argv[:-1], str(tmp_path / "c"), "--golden-images", "50"]) != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


@pytest.mark.slow
def test_export_int8_with_modelopt(trained_test_vit_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("modelopt")
    import onnx

    from ofb_deploy.export.run import export_model_dir

    doc = export_model_dir(trained_test_vit_dir, tmp_path, int8=True, quantizer="modelopt", parity_images=64)
    entry = doc["model"]["int8"]
    assert entry["check"]["quantization"]["quantizer"] == "modelopt" and entry["parity"]["passed"]
    proto = onnx.load(entry["path"])
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 19


@pytest.mark.slow
def test_missing_modelopt_is_one_line(
    trained_test_vit_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ofb_deploy.calibrate.modelopt as mo

    monkeypatch.setattr(mo, "NEEDS", ("modelopt_not_installed_here",))
    argv = ["export", str(trained_test_vit_dir), "--int8", "--quantizer", "modelopt", "--out", str(tmp_path / "o")]
    assert main(argv) == 5
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "ofb-deploy[modelopt]" in lines[0]
    assert not (tmp_path / "o").exists()


def test_bundle_cli_defaults_are_the_bundle_configs() -> None:
    """`ofb-deploy bundle --help` shows BundleConfig's defaults (one home: the golden count lived in both)."""
    params = {p.name: p.default for p in typer.main.get_command(app).commands["bundle"].params}
    defaults = {f.name: f.default for f in dataclasses.fields(BundleConfig)}
    assert params["golden_images"] == defaults["golden_images"] == 5000
    assert params["workspace"] == defaults["workspace_mib"]
    assert params["batch"] == ",".join(str(b) for b in defaults["batches"])
    for name in ("precision", "role", "quantizer"):
        assert params[name] == defaults[name], name
