"""GPU code paths checked without a GPU: precision checks, TensorRT-RTX targets and device support, builder
config (TF32, targets) on the real TensorRT-RTX builder, TensorRT binding rules, the ONNX Runtime TensorRT EP
options and ``make gpu-check`` without a GPU. What needs a GPU to run says so next to the code."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ofb_deploy import create_model
from ofb_deploy.artifacts import RunDir
from ofb_deploy.calibrate import CalibrationSource, quantize_qdq
from ofb_deploy.cli import main
from ofb_deploy.engines import BACKENDS, list_backends, make_runner
from ofb_deploy.engines.builder import build_engine
from ofb_deploy.engines.config import TrtBuildConfig
from ofb_deploy.engines.loaders import trt_provider_options
from ofb_deploy.engines.ort import ort_session_for
from ofb_deploy.engines.tensorrt import bind_tensors
from ofb_deploy.engines.tensorrt_rtx import device_reason, engine_target_reason, library_targets, resolve_targets
from ofb_deploy.engines.trt_build import make_builder_config, parse_onnx
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.onnxtools.export import convert_fp16, export_onnx
from ofb_deploy.onnxtools.precision import check_build_precision, inspect_onnx_precision


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32, float16 and QDQ INT8 ONNX of an untrained ``test_vit`` (precision is about the graph, not weights)."""
    out = tmp_path_factory.mktemp("precisions")
    paths = {p: out / f"m{'' if p == 'fp32' else '.' + p}.onnx" for p in ("fp32", "fp16", "int8")}
    export_onnx(create_model("test_vit").eval(), paths["fp32"])
    convert_fp16(paths["fp32"], paths["fp16"])
    images = np.random.default_rng(0).normal(size=(32, 1, 16, 16)).astype(np.float32)
    quantize_qdq(paths["fp32"], paths["int8"], CalibrationSource(images, {"seed": 0}, batch_size=16))
    return paths


@pytest.fixture(scope="module")
def rtx() -> Any:
    return pytest.importorskip("tensorrt_rtx")


def test_onnx_precision_is_read_from_the_graph(onnx_files: dict[str, Path]) -> None:
    found = {p: inspect_onnx_precision(path) for p, path in onnx_files.items()}
    assert {p: f.precision for p, f in found.items()} == {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}
    assert found["int8"].qdq_nodes > 0 and found["fp16"].float16_tensors > 0 and found["fp32"].qdq_nodes == 0


@pytest.mark.parametrize("backend", ["tensorrt-rtx", "ort-cpu"])
def test_strongly_typed_builds_refuse_a_precision_the_onnx_lacks(
    backend: str, onnx_files: dict[str, Path], tmp_path: Path
) -> None:
    if backend == "tensorrt-rtx":
        pytest.importorskip("tensorrt_rtx")
    for precision, source in (("int8", "fp32"), ("int8", "fp16"), ("fp32", "fp16"), ("fp16", "int8")):
        engine = tmp_path / f"{source}-as-{precision}.engine"
        with pytest.raises(ConfigError, match=f"is an {source} ONNX"):
            build_engine(onnx_files[source], engine, backend, precision)
        assert not engine.exists() and not engine.with_name(engine.name + ".json").exists()


def test_tensorrt10_int8_needs_a_calibrator_or_qdq(onnx_files: dict[str, Path]) -> None:
    # TensorRT 10 (weakly typed) is not installable here; the rule it applies is plain code
    with pytest.raises(ConfigError, match="calibrator"):
        check_build_precision(onnx_files["fp32"], "int8", "tensorrt", weakly_typed=True, calibrated=False)
    assert check_build_precision(onnx_files["fp32"], "int8", "tensorrt", True, calibrated=True).precision == "fp32"
    assert check_build_precision(onnx_files["int8"], "int8", "tensorrt", True).precision == "int8"
    with pytest.raises(ConfigError, match="fp32 ONNX plus builder flags"):
        check_build_precision(onnx_files["fp16"], "fp16", "tensorrt", weakly_typed=True)


def test_build_int8_without_qdq_onnx_fails_with_one_line(onnx_files: dict[str, Path], tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorrt_rtx")
    run = RunDir(tmp_path / "run", create=True)
    run.export_dir.mkdir()
    shutil.copy(onnx_files["fp32"], run.onnx_path("dense"))
    assert main(["build", str(run.root), "--backend", "tensorrt-rtx", "--precision", "int8"]) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--int8" in err and "QDQ" in err
    shutil.copy(onnx_files["fp32"], run.onnx_path("dense", "int8"))  # an "int8" file that holds fp32
    assert main(["build", str(run.root), "--backend", "tensorrt-rtx", "--precision", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is an fp32 ONNX" in err
    assert not list(run.engines_dir.glob("*.engine"))
    assert main(["build", str(run.root), "--backend", "ort-cpu", "--compute-capability", "sm89"]) == 2


def test_rtx_builder_config_has_tf32_off_and_the_widest_targets(rtx: Any, onnx_files: dict[str, Path]) -> None:
    logger = rtx.Logger(rtx.Logger.ERROR)
    builder = rtx.Builder(logger)
    network, _parser = parse_onnx(rtx, builder, logger, onnx_files["fp16"])
    assert builder.create_builder_config().get_flag(rtx.BuilderFlag.TF32)  # TensorRT's default
    config, info = make_builder_config(rtx, builder, network, TrtBuildConfig(precision="fp16"))
    assert not config.get_flag(rtx.BuilderFlag.TF32) and info["tf32"] is False
    assert info["compute_capabilities"] == library_targets(rtx) and config.num_compute_capabilities > 1
    config, info = make_builder_config(rtx, builder, network, TrtBuildConfig(precision="fp16", tf32=True))
    assert config.get_flag(rtx.BuilderFlag.TF32) and info["tf32"] is True


def test_rtx_targets_named_checked_and_recorded(rtx: Any, onnx_files: dict[str, Path], tmp_path: Path) -> None:
    known = library_targets(rtx)
    assert known == sorted(known, key=lambda n: int(n[2:])) and "sm89" in known and "sm90" not in known
    with pytest.raises(ConfigError, match="sm90"):
        resolve_targets(rtx, ["sm90"], None)
    if "tensorrt-rtx" not in [b.name for b in list_backends() if b.can_run]:
        with pytest.raises(ConfigError, match="needs a GPU"):
            resolve_targets(rtx, ["current"], None)
    engine = tmp_path / "m.engine"
    doc = build_engine(
        onnx_files["fp16"],
        engine,
        "tensorrt-rtx",
        "fp16",
        TrtBuildConfig(precision="fp16", batches=(1, 4), opt_level=0, compute_capabilities=["SM89"]),
    )
    assert doc["compute_capabilities"] == ["sm89"] and doc["skipped_targets"] == {}


def test_rtx_runs_only_on_supported_gpus(rtx: Any) -> None:
    # H100 is SM90: TensorRT-RTX 1.x has no kernels for it, whatever CUDA says
    why = device_reason(rtx, (9, 0), "NVIDIA H100 80GB HBM3")
    assert "sm90" in why and "H100" in why and "sm89" in why
    assert device_reason(rtx, (8, 9), "NVIDIA GeForce RTX 4090") == ""
    assert "none found" in device_reason(rtx, None, None)
    assert "--compute-capability sm120" in engine_target_reason(["sm89"], (12, 0))
    assert engine_target_reason(["sm89", "sm120"], (12, 0)) == ""
    status = {b.name: b for b in list_backends()}["tensorrt-rtx"]
    assert status.can_build and "sm89" in status.artifact
    if not status.can_run:
        assert "sm" in status.reason  # says which GPUs it needs


class StandInContext:
    """Records what a TensorRT execution context is told (none can be made without a GPU)."""

    def __init__(self, accept_shapes: bool = True) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {"input": (0, 1, 16, 16)}
        self.addresses: dict[str, int] = {}
        self.accept_shapes = accept_shapes
        self.calls: list[str] = []

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name, ())

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.calls.append(f"shape {name}")
        if self.accept_shapes:
            self.shapes[name] = tuple(shape)
        return self.accept_shapes

    @property
    def all_binding_shapes_specified(self) -> bool:
        return self.shapes["input"][0] > 0

    def get_tensor_address(self, name: str) -> int:
        return self.addresses.get(name, 0)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.calls.append(f"address {name}")
        self.addresses[name] = ptr
        return True


class StandInEngine:
    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        return [(1, 1, 16, 16), (8, 1, 16, 16), (32, 1, 16, 16)]


def test_trt_binding_checks_every_result_and_rebinds() -> None:
    context, engine = StandInContext(), StandInEngine()
    bind_tensors(context, engine, {"input": (4, 1, 16, 16)}, {"input": 100, "logits": 200})
    assert context.shapes["input"] == (4, 1, 16, 16) and context.addresses == {"input": 100, "logits": 200}
    context.calls.clear()
    bind_tensors(context, engine, {"input": (4, 1, 16, 16)}, {"input": 100, "logits": 200})
    assert context.calls == []  # nothing changed: nothing set
    bind_tensors(context, engine, {"input": (2, 1, 16, 16)}, {"input": 300, "logits": 400})  # infer()'s buffers
    bind_tensors(context, engine, {"input": (4, 1, 16, 16)}, {"input": 100, "logits": 200})  # run_bound() again
    assert context.addresses == {"input": 100, "logits": 200} and context.shapes["input"][0] == 4
    with pytest.raises(ConfigError, match="outside the engine's profile"):
        bind_tensors(context, engine, {"input": (64, 1, 16, 16)}, {})
    with pytest.raises(ArtifactError, match="refused shape"):
        bind_tensors(StandInContext(accept_shapes=False), engine, {"input": (4, 1, 16, 16)}, {})


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_runner_describes_threads_and_precision(
    backend: str, onnx_files: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    if backend == "torch":
        from ofb_deploy import save_model_dir

        save_model_dir(create_model("test_vit"), model)
    info = make_runner(backend, model if backend == "torch" else onnx_files["fp32"], threads=1).describe()
    assert {"backend", "version", "precision", "threads"} <= set(info) and info["backend"] == backend


def test_ort_trt_ep_gets_profile_cache_and_precision(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    profile = {"input": {"min": [1, 1, 16, 16], "opt": [8, 1, 16, 16], "max": [32, 1, 16, 16]}}
    options = trt_provider_options("int8", profile, tmp_path / "cache")
    assert options["trt_int8_enable"] and options["trt_fp16_enable"]
    assert options["trt_profile_opt_shapes"] == "input:8x1x16x16" and options["trt_profile_max_shapes"].endswith(
        "32x1x16x16"
    )
    assert options["trt_engine_cache_enable"] and options["trt_engine_cache_path"] == str(tmp_path / "cache")
    assert not trt_provider_options("fp32")["trt_fp16_enable"]
    # a bare ONNX on the TensorRT EP: a profile over batches 1..32 from the graph's input, no cache written
    loader = ort_session_for(onnx_files["fp16"], "trt", precision="fp16")
    assert loader.trt_options()["trt_profile_min_shapes"] == "input:1x1x16x16" and loader.trt_cache_dir is None
    assert loader.trt_options()["trt_fp16_enable"] and not loader.trt_options()["trt_int8_enable"]


def test_gpu_check_without_a_gpu_says_why_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ofb_deploy.engines.registry import cuda_device_name

    if cuda_device_name() is not None:
        pytest.skip("a GPU is present: gpu_check would build and time for minutes")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(script), "--run-dir", str(tmp_path / "no-run"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 0 and len(lines) == 1 and "no NVIDIA GPU" in lines[0]
    assert not out.exists()
