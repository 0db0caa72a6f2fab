"""A TensorRT INT8 calibration cache written without TensorRT, from ONNX Runtime's activation ranges.

Implicit INT8 (TensorRT 8.x and 10.x: ``--int8 --calib=FILE``, ``IInt8EntropyCalibrator2``) needs per-tensor
scales. A device that has TensorRT but no calibration data can take them from a cache file. Its format, from
TensorRT's ``samples/sampleINT8/README.md`` (8.5.2): a header ``TRT-<version>-EntropyCalibration2``, then one line
``<tensor name>: <scale>`` per tensor, the scale being ``amax / 127`` as the big-endian hex of its float32 bits.
``<version>`` is ``NV_TENSORRT_VERSION``: ``major*1000 + minor*100 + patch`` up to 8.x (8.5.2 -> ``8502``),
``major*10000 + minor*100 + patch`` from 10 (10.3.0 -> ``100300``; ``NvInferRuntimeBase.h``).

NOTE: TensorRT ignores a cache whose header names another version, and trtexec then calibrates on random data
(``RndInt8Calibrator`` in ``samples/common/sampleEngines.cpp``). The ranges do not depend on the version, so the
bundle's ``build.sh`` rewrites the header to the device's version before it builds.

The network's tensors are named after the ONNX value names by TensorRT's ONNX parser, so the ranges are taken for
every float tensor of the ONNX the engine is built from: the 99.999th percentile of ``|x|`` over the calibration
images (ONNX Runtime's ``PercentileCalibrater``, 2048 bins, symmetric). TensorRT accepts any scales under the
``EntropyCalibration2`` header (the calibrator trtexec uses); the percentile is used instead of KL entropy because
ONNX Runtime's entropy search is pure Python (about 1 s per tensor at 2048 bins: two minutes for a 4-block ViT).
Tensors TensorRT makes internally have no scale and run in FP16/FP32.
"""

from __future__ import annotations

import contextlib
import io
import struct
import tempfile
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import qdq_work_files
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.utils.io import atomic_write_text

ALGORITHM = "EntropyCalibration2"  # the calibrator trtexec's --calib uses (RndInt8Calibrator)
PERCENTILE = 99.999


def trt_version_number(version: str) -> int:
    """``NV_TENSORRT_VERSION`` of a version string: ``8.5.2`` -> 8502, ``10.3.0`` -> 100300.

    Args:
        version: ``major.minor[.patch]``.
    """
    parts = [int(p) for p in version.split(".")[:3] if p.isdigit()]
    if len(parts) < 2:
        raise ConfigError(f"not a TensorRT version: {version!r}")
    major, minor, patch = (parts + [0])[:3]
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def cache_header(version: str) -> str:
    """The first line of a calibration cache TensorRT ``version`` accepts."""
    return f"TRT-{trt_version_number(version)}-{ALGORITHM}"


def scale_hex(amax: float) -> str:
    """``amax / 127`` as the hex of its big-endian float32 bits (a zero range gets the smallest positive scale)."""
    scale = max(float(amax), 1e-8) / 127.0
    return struct.pack(">f", scale).hex()


def tensor_ranges(onnx_path: Path, source: Any, percentile: float = PERCENTILE) -> dict[str, float]:
    """``amax`` of every float tensor of ``onnx_path`` over the calibration images (percentile of ``|x|``).

    Args:
        onnx_path: the float32 ONNX the engine is built from.
        source: a ``CalibrationSource``.
        percentile: the percentile of ``|x|`` taken as the range.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    with tempfile.TemporaryDirectory(prefix="ofb-trtcalib-") as work:
        augmented, _ = qdq_work_files(work)
        try:
            calibrator = create_calibrator(
                Path(onnx_path),
                None,  # NOTE: every float tensor, not only the inputs of quantizable ops
                augmented_model_path=str(augmented),
                calibrate_method=CalibrationMethod.Percentile,
                providers=["CPUExecutionProvider"],
                extra_options={"symmetric": True, "num_bins": 2048, "percentile": percentile},
            )
            # NOTE: ORT's histogram calibrators print progress with print(); keep the CLI's output ours
            with contextlib.redirect_stdout(io.StringIO()):
                calibrator.collect_data(source.ort_reader())
                data = calibrator.compute_data()
        except Exception as exc:  # ORT's calibrator raises plain exceptions of several kinds
            raise ArtifactError(f"calibrating {onnx_path} for a TensorRT cache failed: {exc}") from exc
    ranges = {}
    for name, value in data.data.items():
        low, high = (float(v) for v in value.range_value)
        ranges[name] = max(abs(low), abs(high))
    if not ranges:
        raise ArtifactError(f"calibrating {onnx_path} found no float tensors")
    return ranges


def write_trt_calib_cache(path: Path, ranges: dict[str, float], version: str) -> Path:
    """Write a calibration cache for TensorRT ``version`` (atomically).

    Args:
        path: destination.
        ranges: ``amax`` per tensor name (``tensor_ranges``).
        version: the TensorRT version the header names (``build.sh`` rewrites it to the device's).
    """
    lines = [cache_header(version)] + [f"{name}: {scale_hex(amax)}" for name, amax in sorted(ranges.items())]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_trt_calib_cache(path: Path) -> tuple[str, dict[str, float]]:
    """The header and the ``amax`` per tensor of a calibration cache (for checks and tests)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise ArtifactError(f"{path} is not a TensorRT calibration cache (no TRT-<version> header)")
    ranges = {}
    for line in lines[1:]:
        name, _, value = line.rpartition(": ")
        ranges[name] = struct.unpack(">f", bytes.fromhex(value))[0] * 127.0
    return lines[0], ranges
