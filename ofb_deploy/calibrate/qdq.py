"""QDQ INT8 ONNX with ONNX Runtime static quantization (``quantize_static``), cached.

QDQ format, signed int8 activations and per-channel signed weights (S8S8, the only form TensorRT
accepts; zero points are 0 because both are symmetric), and only MatMul/Gemm quantized by default (quantizing
LayerNorm hurts ViT accuracy). Calibration method MinMax, Entropy or Percentile. The result is cached under
a key made of the ONNX's sha256, the calibration selection and the quantization config, so a rebuild with the
same inputs copies the cached file instead of calibrating again.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import qdq_cache_files, qdq_work_files
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.utils.io import atomic_path, atomic_write_json, sha256_file, sha256_json

log = logging.getLogger(__name__)


class CalibrationMethod(str, Enum):
    """How activation ranges are chosen from the calibration data."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


@dataclass(frozen=True)
class QuantConfig:
    """Static quantization options.

    Args:
        method: ``minmax``, ``entropy`` or ``percentile``.
        op_types: ONNX op types to quantize.
        per_channel: per-output-channel weight scales.
        percentile: the percentile for ``percentile`` calibration.
    """

    method: CalibrationMethod = CalibrationMethod.MINMAX
    op_types: tuple[str, ...] = ("MatMul", "Gemm")
    per_channel: bool = True
    percentile: float = 99.999

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", CalibrationMethod(self.method))
        except ValueError as exc:
            names = ", ".join(m.value for m in CalibrationMethod)
            raise ConfigError(f"unknown calibration method {self.method!r}; choose from {names}") from exc
        object.__setattr__(self, "op_types", tuple(self.op_types))

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["method"] = self.method.value
        doc["op_types"] = list(self.op_types)
        return doc


def cache_key(onnx_path: Path, source: Any, config: QuantConfig) -> str:
    """Key of a QDQ result: ONNX bytes, calibration selection and quantization config."""
    return sha256_json({"onnx": sha256_file(onnx_path), "calib": source.key, "quant": config.to_dict()})[:20]


def _quantize(onnx_path: Path, out_path: Path, source: Any, config: QuantConfig) -> None:
    from onnxruntime.quantization import CalibrationMethod as OrtMethod

    method = {"minmax": OrtMethod.MinMax, "entropy": OrtMethod.Entropy, "percentile": OrtMethod.Percentile}
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True}  # zero points 0: TensorRT takes S8S8 only
    extra["QuantizeBias"] = False  # NOTE: TensorRT rejects int32 bias DequantizeLinear; biases stay float
    if config.method is CalibrationMethod.PERCENTILE:
        extra["CalibPercentile"] = config.percentile
    extra["CalibTensorRangeSymmetric"] = True
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # NOTE: ORT logs a "consider pre-processing" warning on the root logger
    try:
        _run_quantize_static(onnx_path, out_path, source, config, method, extra)
    finally:
        root.setLevel(level)


def _entropy_ranges(onnx_path: Path, source: Any, config: QuantConfig, work: Path) -> Path:
    """Entropy (KL) ranges with 2048 histogram bins, saved as ORT's calibration cache JSON.

    NOTE: ``quantize_static`` builds its entropy calibrator with 128 bins for 128 quantized bins, which leaves
    one candidate threshold (the full range), i.e. MinMax; calibrating here with 2048 bins gives real KL ranges.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod as OrtMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    augmented, ranges = qdq_work_files(work)
    calibrator = create_calibrator(
        onnx_path,
        list(config.op_types),
        augmented_model_path=str(augmented),
        calibrate_method=OrtMethod.Entropy,
        providers=["CPUExecutionProvider"],
        extra_options={"symmetric": True, "num_bins": 2048, "num_quantized_bins": 128},
    )
    calibrator.collect_data(source.ort_reader())
    save_tensors_data(calibrator.compute_data(), ranges)
    return ranges


def _run_quantize_static(
    onnx_path: Path, out_path: Path, source: Any, config: QuantConfig, method: dict, extra: dict
) -> None:

    with tempfile.TemporaryDirectory(prefix="ofb-calib-") as work:
        ranges = None
        if config.method is CalibrationMethod.ENTROPY:
            ranges = _entropy_ranges(onnx_path, source, config, Path(work))
        _quantize_static(onnx_path, out_path, None if ranges else source.ort_reader(), config, method, extra, ranges)


def _quantize_static(
    onnx_path: Path,
    out_path: Path,
    reader: Any,
    config: QuantConfig,
    method: dict,
    extra: dict,
    ranges: Path | None,
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(onnx_path),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(config.op_types),
        per_channel=config.per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method[config.method.value],
        calibration_providers=["CPUExecutionProvider"],
        extra_options=extra,
        calibration_cache_path=ranges,
    )


def quantize_qdq(
    onnx_path: Path,
    out_path: Path,
    source: Any,
    config: QuantConfig | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Calibrate on ``source`` and write a QDQ INT8 ONNX to ``out_path`` (atomically).

    Args:
        onnx_path: the float32 ONNX.
        out_path: destination of the QDQ ONNX.
        source: a ``CalibrationSource``.
        config: quantization options (default: MinMax, MatMul/Gemm, per-channel).
        cache_dir: where cached QDQ results live (``None``: no cache).

    Returns:
        ``{"key", "cached", "calibration": selection, "quant": config, "qdq_nodes": n}``.
    """
    config = config or QuantConfig()
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise ArtifactError(f"ONNX file not found: {onnx_path} (run `ofb-deploy export` first)")
    key = cache_key(onnx_path, source, config)
    cached_onnx, cached_info = qdq_cache_files(cache_dir, key) if cache_dir is not None else (None, None)
    cached = cached_onnx is not None and cached_onnx.is_file()
    with atomic_path(out_path) as tmp:
        if cached:
            shutil.copyfile(cached_onnx, tmp)
            log.info("INT8 QDQ: reusing cached calibration %s", key)
        else:
            try:
                _quantize(onnx_path, tmp, source, config)
            except (ConfigError, ArtifactError):
                raise
            except Exception as exc:  # ORT's quantizer raises plain exceptions of several kinds
                raise ArtifactError(f"INT8 quantization of {onnx_path} failed: {str(exc).splitlines()[0]}") from exc
        qdq_nodes = _count_qdq(tmp)
    if cached_onnx is not None and not cached:
        with atomic_path(cached_onnx) as tmp:
            shutil.copyfile(out_path, tmp)
        atomic_write_json(cached_info, {"calibration": source.selection, "quant": config.to_dict()})
    if qdq_nodes == 0:
        raise ArtifactError(f"INT8 quantization of {onnx_path} produced no QuantizeLinear nodes")
    return {
        "key": key,
        "cached": cached,
        "calibration": source.selection,
        "quant": config.to_dict(),
        "qdq_nodes": qdq_nodes,
    }


def _count_qdq(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return sum(n.op_type == "QuantizeLinear" for n in proto.graph.node)
