"""Calibration: one seeded source of real images for ORT readers, QDQ ONNX (cached) and TensorRT calibrators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from ofb_deploy import create_model
from ofb_deploy.calibrate import CalibrationSource, QuantConfig, quantize_qdq
from ofb_deploy.errors import BackendUnavailableError, ConfigError
from ofb_deploy.onnxtools.export import export_onnx


@pytest.fixture(scope="module")
def source(fmnist_root: Path) -> CalibrationSource:
    spec = create_model("test_vit").spec
    return CalibrationSource.from_data({"root": str(fmnist_root)}, spec, num_images=64, seed=3, batch_size=16)


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "m.onnx"
    export_onnx(create_model("test_vit").eval(), path)
    return path


def test_source_is_seeded_real_and_preprocessed(source: CalibrationSource, fmnist_root: Path) -> None:
    spec = create_model("test_vit").spec
    assert source.images.shape == (64, 1, 16, 16) and source.images.dtype == np.float32
    # normalised with the model's mean/std: Fashion-MNIST pixels in [0, 1] map to about [-0.81, 2.02]
    assert source.images.min() >= -0.82 and source.images.max() <= 2.03 and source.images.std() > 0.3
    again = CalibrationSource.from_data({"root": str(fmnist_root)}, spec, num_images=64, seed=3, batch_size=16)
    other = CalibrationSource.from_data({"root": str(fmnist_root)}, spec, num_images=64, seed=4, batch_size=16)
    assert again.key == source.key and other.key != source.key
    assert source.selection["num_images"] == 64 and source.selection["seed"] == 3


def test_ort_reader_protocol(source: CalibrationSource) -> None:
    reader = source.ort_reader()
    batches = []
    while (feed := reader.get_next()) is not None:
        batches.append(feed["input"])
    assert [len(b) for b in batches] == [16, 16, 16, 16]
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["input"], batches[0])
    with pytest.raises(ConfigError):
        CalibrationSource(np.zeros((0, 1, 16, 16), np.float32), {})


def _qdq_facts(path: Path) -> tuple[set[str], list[int], bool]:
    proto = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    produced_by_dq = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized_ops = {n.op_type for n in proto.graph.node if any(i in produced_by_dq for i in n.input)}
    zero_points = [int(np.abs(inits[n.input[2]]).max()) for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    per_channel = any(
        n.op_type == "DequantizeLinear" and inits.get(n.input[1], np.zeros(1)).size > 1 for n in proto.graph.node
    )
    return quantized_ops, zero_points, per_channel


def test_qdq_matmul_only_symmetric_per_channel_and_cached(
    source: CalibrationSource, fp32_onnx: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    info = quantize_qdq(fp32_onnx, tmp_path / "a.onnx", source, cache_dir=cache)
    ops, zero_points, per_channel = _qdq_facts(tmp_path / "a.onnx")
    # MatMul/Gemm read int8 inputs; LayerNorm and the patch Conv stay float (quantizing LayerNorm hurts ViTs)
    assert {"MatMul", "Gemm"} <= ops and not {"LayerNormalization", "Conv"} & ops
    assert zero_points and max(zero_points) == 0  # signed symmetric: TensorRT takes S8S8 only
    assert per_channel and info["qdq_nodes"] > 0 and not info["cached"]
    again = quantize_qdq(fp32_onnx, tmp_path / "b.onnx", source, cache_dir=cache)
    assert again["cached"] and again["key"] == info["key"]
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    other = quantize_qdq(fp32_onnx, tmp_path / "c.onnx", source, QuantConfig(method="percentile"), cache_dir=cache)
    assert other["key"] != info["key"] and not other["cached"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_methods_run(method: str, source: CalibrationSource, fp32_onnx: Path, tmp_path: Path) -> None:
    small = CalibrationSource(source.images[:16], {**source.selection, "num_images": 16}, batch_size=16)
    info = quantize_qdq(fp32_onnx, tmp_path / "q.onnx", small, QuantConfig(method=method))
    assert info["quant"]["method"] == method and info["qdq_nodes"] > 0


def test_bad_method_and_trt11_style_library_has_no_calibrator(source: CalibrationSource, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration method"):
        QuantConfig(method="histogram")
    trt = pytest.importorskip("tensorrt_rtx")
    # strongly typed TensorRT (11, RTX) removed IInt8EntropyCalibrator2: INT8 must come from the QDQ ONNX
    with pytest.raises(BackendUnavailableError, match="QDQ"):
        source.trt_calibrator(trt, tmp_path / "c.cache")


def test_tensorrt10_calibration_batches_all_fit_the_profile() -> None:
    images = np.zeros((20, 1, 16, 16), np.float32)
    source = CalibrationSource(images, {"n": 20}, batch_size=16)
    few = source.fixed_batches(32)  # fewer images than the wanted batch: the batch shrinks, nothing overruns
    assert few.batch_size == 20 and [len(f["input"]) for f in few] == [20]
    many = source.fixed_batches(8)
    assert [len(f["input"]) for f in many] == [8, 8]  # the short last batch (4) is dropped
