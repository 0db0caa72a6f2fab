"""QDQ INT8 ONNX with NVIDIA TensorRT Model Optimizer's ONNX PTQ (``python -m modelopt.onnx.quantization``), cached.

ModelOpt places Q/DQ the way TensorRT fuses them: it leaves the attention core (MHA) and LayerNorm unquantized, and
it writes opset 19 or later (so its files are for TensorRT 10 and later, not 8.5). It calibrates on ONNX Runtime's
CPU execution provider here (``--calibration_eps cpu``). ``--high_precision_dtype`` decides what the layers it
leaves unquantized are stored as: ``fp32`` keeps them as exported (weakly typed TensorRT 10 builds then choose with
``--fp16``), ``fp16`` bakes half precision into the ONNX (for strongly typed builds: TensorRT 11, TensorRT-RTX,
``--stronglyTyped``), with LayerNorm and Softmax kept in float32 (DEPLOY.md: a float16 LayerNorm overflows).
Flags checked against ModelOpt 0.47's ``modelopt/onnx/quantization/__main__.py`` (``--onnx_path``,
``--quantize_mode``, ``--calibration_data_path`` (npz keyed by input name), ``--calibration_method``,
``--calibration_eps``, ``--high_precision_dtype``, ``--op_types_to_exclude_fp16``, ``--output_path``).

ModelOpt runs as that command in a child process: while it quantizes it replaces parts of ONNX Runtime's
calibrator in its own process (``ort_patching.patch_ort_modules``: ``create_calibrator``,
``HistogramCollector.collect_value`` ...), which would change every later ORT calibration in the same process
(the ``ort`` quantizer, TensorRT calibration caches).

``nvidia-modelopt[onnx]`` pins ``onnxruntime-gpu~=1.24`` and ``onnx~=1.21``, which clash with this project's
``onnxruntime>=1.27``; the ``modelopt`` extra of ofb-deploy therefore installs ``nvidia-modelopt`` with the ONNX
helpers it imports but not those pins (evidence and measurements: README, "Edge GPUs"). A missing ModelOpt is a
one-line ``BackendUnavailableError``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import qdq_cache_files
from ofb_deploy.errors import ArtifactError, BackendUnavailableError, ConfigError
from ofb_deploy.utils.io import atomic_path, atomic_write_json, sha256_file, sha256_json

log = logging.getLogger(__name__)

INSTALL = (
    "pip install 'ofb-deploy[modelopt]' (nvidia-modelopt without its [onnx] extra, whose onnxruntime-gpu~=1.24 "
    "and onnx~=1.21 pins clash with onnxruntime>=1.27)"
)
HIGH_PRECISIONS = ("fp32", "fp16")
KEEP_FLOAT32 = ["LayerNormalization", "Softmax"]  # NOTE: as export.onnx.FP16_KEEP_FLOAT32: fp16 overflow there
NEEDS = ("modelopt", "onnx_graphsurgeon", "onnxslim", "polygraphy")  # what modelopt.onnx.quantization imports


def modelopt_version() -> str:
    """The installed ModelOpt version, or a one-line ``BackendUnavailableError`` saying how to install it.

    NOTE: nothing of ModelOpt is imported here (importing it pulls in torch, and quantizing patches ORT); the child
    process that quantizes reports anything else missing.
    """
    from importlib import metadata, util

    missing = [name for name in NEEDS if util.find_spec(name) is None]
    if missing:
        raise BackendUnavailableError(f"nvidia-modelopt is not usable here (no {', '.join(missing)}): {INSTALL}")
    return metadata.version("nvidia-modelopt")


def _command(onnx_path: Path, out_path: Path, calib: Path, high_precision: str) -> list[str]:
    cmd = [sys.executable, "-m", "modelopt.onnx.quantization", "--onnx_path", str(onnx_path)]
    cmd += ["--quantize_mode", "int8", "--calibration_data_path", str(calib), "--calibration_method", "entropy"]
    cmd += ["--calibration_eps", "cpu", "--high_precision_dtype", high_precision, "--output_path", str(out_path)]
    if high_precision != "fp32":
        cmd += ["--op_types_to_exclude_fp16", *KEEP_FLOAT32]
    return [*cmd, "--log_level", "ERROR"]


def quantize_modelopt(
    onnx_path: Path,
    out_path: Path,
    source: Any,
    *,
    high_precision: str = "fp32",
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Calibrate on ``source`` with ModelOpt and write its QDQ INT8 ONNX to ``out_path`` (atomically).

    Args:
        onnx_path: the float32 ONNX (opset >= 17).
        out_path: destination of the QDQ ONNX.
        source: a ``CalibrationSource`` (its images are the calibration data).
        high_precision: ``fp32`` or ``fp16``: how the layers left unquantized are stored.
        cache_dir: where cached results live (``None``: no cache).

    Returns:
        ``{"quantizer", "version", "key", "cached", "calibration", "high_precision", "qdq_nodes"}``.
    """
    if high_precision not in HIGH_PRECISIONS:
        raise ConfigError(f"high_precision must be one of {HIGH_PRECISIONS}, got {high_precision!r}")
    version = modelopt_version()
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise ArtifactError(f"ONNX file not found: {onnx_path} (run `ofb-deploy export` first)")
    setup = {"quantizer": "modelopt", "version": version, "method": "entropy", "high_precision": high_precision}
    key = sha256_json({"onnx": sha256_file(onnx_path), "calib": source.key, "quant": setup})[:20]
    cached_onnx, cached_info = qdq_cache_files(cache_dir, key) if cache_dir is not None else (None, None)
    cached = cached_onnx is not None and cached_onnx.is_file()
    with atomic_path(out_path) as tmp:
        if cached:
            shutil.copyfile(cached_onnx, tmp)
            log.info("INT8 QDQ (ModelOpt): reusing cached calibration %s", key)
        else:
            _quantize_in(onnx_path, tmp, source, high_precision)
        qdq_nodes = _count_qdq(tmp)
    if qdq_nodes == 0:
        out_path.unlink(missing_ok=True)
        raise ArtifactError(f"ModelOpt quantization of {onnx_path} produced no QuantizeLinear nodes")
    if cached_onnx is not None and not cached:
        with atomic_path(cached_onnx) as tmp:
            shutil.copyfile(out_path, tmp)
        atomic_write_json(cached_info, {"calibration": source.selection, "quant": setup})
    return {**setup, "key": key, "cached": cached, "calibration": source.selection, "qdq_nodes": qdq_nodes}


def _quantize_in(onnx_path: Path, out_path: Path, source: Any, high_precision: str) -> None:
    """Run ModelOpt's command in a scratch folder (it writes intermediate files next to its input and output)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="ofb-modelopt-") as work:
        src, dst, calib = Path(work) / "in.onnx", Path(work) / "out.onnx", Path(work) / "calib.npz"
        shutil.copyfile(onnx_path, src)
        np.savez(calib, input=source.images)
        proc = subprocess.run(_command(src, dst, calib, high_precision), capture_output=True, text=True, cwd=work)
        if proc.returncode != 0 or not dst.is_file():
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            why = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "no output")
            raise ArtifactError(f"ModelOpt INT8 quantization of {onnx_path} failed (exit {proc.returncode}): {why}")
        shutil.copyfile(dst, out_path)


def _count_qdq(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return sum(n.op_type == "QuantizeLinear" for n in proto.graph.node)
