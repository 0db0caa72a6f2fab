"""Build one engine (plus its JSON sidecar) from an ONNX file, for any backend and precision.

For ONNX Runtime an engine is an ONNX the provider optimised plus the sidecar: ORT's fully optimised graph for
``ort-cpu`` and ``ort-cuda``, the basic-optimised graph plus the TensorRT EP's engine cache for ``ort-trt``. It is
built only where the provider runs (``registry``): elsewhere it would be a mislabelled copy of the export. Every
build checks that the ONNX really holds the precision it is labelled with (``onnxtools.precision``). The build
stage (``ofb_deploy.build``) picks the ONNX of each run model and calls ``build_engine``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import ort_trt_cache_dir, runtime_cache_path
from ofb_deploy.engines.config import TrtBuildConfig
from ofb_deploy.engines.loaders import OrtSessionFromOnnx, batch_profile, import_onnxruntime, trt_provider_options
from ofb_deploy.engines.registry import BACKENDS, PRECISIONS, cuda_device_name, require_backend
from ofb_deploy.engines.sidecar import write_sidecar
from ofb_deploy.engines.tensorrt import import_trt, is_strongly_typed
from ofb_deploy.engines.tensorrt_rtx import runtime_info
from ofb_deploy.engines.trt_build import build_serialized_engine
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.onnxtools.export import check_onnx
from ofb_deploy.onnxtools.precision import check_build_precision
from ofb_deploy.utils.io import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)

CALIB_BATCH = 32  # TensorRT 10 calibration batch (capped at the number of calibration images)


def _warm_trt_cache(engine_path: Path, precision: str, profile: dict[str, Any]) -> Path:
    """Let the TensorRT EP build its engines once into a fresh cache folder, then move it next to the engine.

    NOTE: needs onnxruntime-gpu with TensorRT and a GPU; the folder is renamed into place only when complete.
    """
    final = ort_trt_cache_dir(engine_path)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        OrtSessionFromOnnx(engine_path, "trt", precision=precision, profile=profile, trt_cache_dir=work)()
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def _build_ort(onnx_path: Path, engine_path: Path, backend: str, precision: str, config: TrtBuildConfig) -> dict:
    ort = import_onnxruntime()
    provider = backend.split("-", 1)[1]
    info = check_onnx(onnx_path, require_layernorm=False)
    doc: dict[str, Any] = {"library": "onnxruntime", "library_version": ort.__version__}
    doc |= {"gpu": cuda_device_name() if provider != "cpu" else None, "inputs": info["inputs"]}
    doc |= {"outputs": info["outputs"], "profile": {"batch": "dynamic"}}
    with atomic_path(engine_path) as tmp:
        # NOTE: ORT writes its optimised graph while creating the session. The TensorRT EP parses the graph
        # itself, and ORT's extended fusions make contrib ops it cannot take, so ort-trt keeps basic ones only.
        basic = provider == "trt"
        OrtSessionFromOnnx(onnx_path, "cpu" if basic else provider, 1, optimized_model_path=tmp, basic_only=basic)()
    doc["optimized"] = "basic" if provider == "trt" else "all"
    doc["built_on"] = f"{provider}: ORT-optimised graph"
    if provider == "trt":
        doc["profile"] = {"batches": sorted(set(config.batches)), **batch_profile(info["inputs"], config.profile)}
        doc["trt_cache"] = _warm_trt_cache(engine_path, precision, doc["profile"]).name
        doc["provider_options"] = trt_provider_options(precision, doc["profile"], Path(doc["trt_cache"]))
    return doc


def _build_trt(
    onnx_path: Path,
    engine_path: Path,
    backend: str,
    config: TrtBuildConfig,
    calibrator: Any,
) -> dict[str, Any]:
    trt = import_trt("tensorrt_rtx" if backend == "tensorrt-rtx" else "tensorrt")
    info: dict[str, Any] = {}
    blob = build_serialized_engine(trt, onnx_path, config, calibrator=calibrator, info=info)
    atomic_write_bytes(engine_path, blob)
    gpu = cuda_device_name()
    info |= {"library": trt.__name__.split(".")[0], "library_version": trt.__version__, "gpu": gpu}
    info["built_on"] = "gpu" if gpu else "cpu (ahead-of-time, no GPU)"
    info["profile"] = {"batches": sorted(set(config.batches)), **info["profile"]}
    if calibrator is not None:
        cache = str(calibrator.cache_path)
        info["calibration"] = {"batch": calibrator.get_batch_size(), "batches": len(calibrator.reader), "cache": cache}
    if backend == "tensorrt-rtx":
        cache_file = runtime_cache_path(engine_path)
        cache_file.unlink(missing_ok=True)  # specialised kernels of the previous engine do not fit this one
        info["runtime"] = runtime_info(cache_file)
    return info


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    backend: str,
    precision: str = "fp32",
    config: TrtBuildConfig | None = None,
    calibrator: Any = None,
) -> dict[str, Any]:
    """Build ``engine_path`` (and its sidecar) for ``backend`` from ``onnx_path``.

    Args:
        onnx_path: the ONNX matching the backend's typing (see the module table).
        engine_path: destination engine file; the sidecar is ``artifacts.sidecar_path(engine_path)``.
        backend: one of ``BACKENDS`` except ``torch``.
        precision: ``fp32``, ``fp16`` or ``int8``; refused when the ONNX does not hold it.
        config: build options (batches for every backend; workspace, timing cache, optimisation level,
            compute capabilities and TF32 for TensorRT).
        calibrator: TensorRT 10 INT8 calibrator (``CalibrationSource.trt_calibrator``).

    Returns:
        The sidecar document.
    """
    if backend not in BACKENDS or backend == "torch":
        raise ConfigError(f"cannot build backend {backend!r}; choose from {', '.join(BACKENDS[1:])}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; precisions: {', '.join(PRECISIONS)}")
    require_backend(backend)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise ArtifactError(f"ONNX file not found: {onnx_path} (run `ofb-deploy export` first)")
    config = config or TrtBuildConfig(precision=precision)
    if config.precision != precision:
        raise ConfigError(f"build config precision {config.precision} differs from {precision}")
    weak = backend == "tensorrt" and not is_strongly_typed(import_trt("tensorrt"))
    found = check_build_precision(onnx_path, precision, backend, weak, calibrator is not None)
    try:
        if backend.startswith("ort-"):
            info = _build_ort(onnx_path, engine_path, backend, precision, config)
        else:
            info = _build_trt(onnx_path, engine_path, backend, config, calibrator)
        info["onnx_precision"] = {"qdq_nodes": found.qdq_nodes, "float16_tensors": found.float16_tensors}
        return write_sidecar(engine_path, onnx_path, {"backend": backend, "precision": precision, **info})
    except BaseException:
        engine_path.unlink(missing_ok=True)  # never leave an engine without its sidecar
        raise
