"""GPU code paths checked without a GPU: the precision an ONNX holds and the check that a build's precision
matches it. What needs a GPU to run says so next to the code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ofb_deploy import create_model
from ofb_deploy.calibrate import CalibrationSource, quantize_qdq
from ofb_deploy.engines.precision import check_build_precision, inspect_onnx_precision
from ofb_deploy.errors import ConfigError
from ofb_deploy.export.onnx import convert_fp16, export_onnx


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


def test_onnx_precision_is_read_from_the_graph(onnx_files: dict[str, Path]) -> None:
    found = {p: inspect_onnx_precision(path) for p, path in onnx_files.items()}
    assert {p: f.precision for p, f in found.items()} == {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}
    assert found["int8"].qdq_nodes > 0 and found["fp16"].float16_tensors > 0 and found["fp32"].qdq_nodes == 0


def test_tensorrt10_int8_needs_a_calibrator_or_qdq(onnx_files: dict[str, Path]) -> None:
    # TensorRT 10 (weakly typed) is not installable here; the rule it applies is plain code
    with pytest.raises(ConfigError, match="calibrator"):
        check_build_precision(onnx_files["fp32"], "int8", "tensorrt", weakly_typed=True, calibrated=False)
    assert check_build_precision(onnx_files["fp32"], "int8", "tensorrt", True, calibrated=True).precision == "fp32"
    assert check_build_precision(onnx_files["int8"], "int8", "tensorrt", True).precision == "int8"
    with pytest.raises(ConfigError, match="fp32 ONNX plus builder flags"):
        check_build_precision(onnx_files["fp16"], "fp16", "tensorrt", weakly_typed=True)
