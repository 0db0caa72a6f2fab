"""The build stage: an engine (plus JSON sidecar) per model role, backend and precision.

Which ONNX a build starts from depends on the backend's typing:

=====================  ======================  ======================  ==========================
backend                fp32                    fp16                    int8
=====================  ======================  ======================  ==========================
ort-*                  ``role.onnx``           ``role.fp16.onnx``      ``role.int8.onnx`` (QDQ)
tensorrt 11, RTX       ``role.onnx``           ``role.fp16.onnx``      ``role.int8.onnx`` (QDQ)
tensorrt 10            ``role.onnx``           ``role.onnx`` + FP16    ``role.onnx`` + INT8 + calibrator
=====================  ======================  ======================  ==========================

A missing fp16 ONNX is made (with parity) by the export code first: the conversion needs no data. A missing
QDQ ONNX is an error naming ``ofb-deploy export RUN --int8``: INT8 needs calibration images and choices
(method, image count) that belong to export. Every build checks that the ONNX really holds the precision it is
labelled with (``engines.precision``).

For ONNX Runtime an engine is an ONNX the provider optimised plus the sidecar: ORT's fully optimised graph for
``ort-cpu`` and ``ort-cuda``, the basic-optimised graph plus the TensorRT EP's engine cache for ``ort-trt``. It is
built only where the provider runs (``registry``): elsewhere it would be a mislabelled copy of the export.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import ROLES, RunDir, ort_trt_cache_dir, runtime_cache_path, trt_calib_cache
from ofb_deploy.engines.config import DEFAULT_BATCHES, TrtBuildConfig
from ofb_deploy.engines.precision import check_build_precision
from ofb_deploy.engines.registry import BACKENDS, PRECISIONS, cuda_device_name, require_backend
from ofb_deploy.engines.sidecar import write_sidecar
from ofb_deploy.engines.tensorrt import import_trt, is_strongly_typed
from ofb_deploy.engines.trt_build import build_serialized_engine
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.utils.io import atomic_path, atomic_write_bytes, sha256_json

log = logging.getLogger(__name__)

CALIB_BATCH = 32  # TensorRT 10 calibration batch (capped at the number of calibration images)


def _warm_trt_cache(engine_path: Path, precision: str, profile: dict[str, Any]) -> Path:
    """Let the TensorRT EP build its engines once into a fresh cache folder, then move it next to the engine.

    NOTE: needs onnxruntime-gpu with TensorRT and a GPU; the folder is renamed into place only when complete.
    """
    from ofb_deploy.engines.loaders import OrtSessionFromOnnx

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
    from ofb_deploy.engines.loaders import OrtSessionFromOnnx, batch_profile, import_onnxruntime, trt_provider_options
    from ofb_deploy.export.onnx import check_onnx

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
        from ofb_deploy.engines.tensorrt_rtx import runtime_info

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


def _onnx_for(run_dir: RunDir, role: str, backend: str, precision: str) -> tuple[Path, bool]:
    """The ONNX to build from, and whether TensorRT 10 builder flags (weak typing) apply."""
    weak = backend == "tensorrt" and not is_strongly_typed(import_trt("tensorrt"))
    source_precision = "fp32" if weak else precision
    path = run_dir.onnx_path(role, source_precision)
    if path.is_file():
        return path, weak
    run_dir.require(run_dir.onnx_path(role, "fp32"), f"run `ofb-deploy export {run_dir.root}` first")
    if source_precision == "int8":
        raise ArtifactError(
            f"{path} not found: {backend} takes INT8 from a QDQ ONNX; "
            f"run `ofb-deploy export {run_dir.root} --int8` first"
        )
    from ofb_deploy.export.run import add_precision

    log.info("making %s from the fp32 ONNX (with parity)", path.name)
    add_precision(run_dir, role, source_precision)
    return path, weak


def _calibrator(run_dir: RunDir, role: str, onnx_path: Path, calib_images: int | None) -> Any:
    from ofb_deploy.calibrate import CalibrationSource
    from ofb_deploy.data import run_data
    from ofb_deploy.models.checkpoint import read_model_dir_spec
    from ofb_deploy.utils.io import sha256_file

    spec = read_model_dir_spec(run_dir.model_dir(role))
    data = run_data(run_dir)
    source = CalibrationSource.from_data(data, spec, num_images=calib_images or data.calib_size, seed=data.seed)
    key = sha256_json({"onnx": sha256_file(onnx_path), "calib": source.key, "method": "entropy2"})[:20]
    cache = trt_calib_cache(run_dir.calib_dir, key)
    # NOTE: the build gives the calibrator its own profile (min = opt = max = its batch), independent of --batch
    return source.trt_calibrator(import_trt("tensorrt"), cache, batch_size=CALIB_BATCH)


def build_run(
    run_dir: RunDir,
    backend: str,
    precision: str,
    batches: tuple[int, ...] = DEFAULT_BATCHES,
    *,
    workspace_mb: int | None = None,
    timing_cache: Path | None = None,
    opt_level: int | None = None,
    calib_images: int | None = None,
    compute_capabilities: tuple[str, ...] = (),
    tf32: bool = False,
) -> dict:
    """Build ``backend`` at ``precision`` for every exported role of the run; record the stage.

    Args:
        run_dir: the run directory (``export/`` must hold the fp32 ONNX).
        backend: backend name.
        precision: ``fp32``, ``fp16`` or ``int8``.
        batches: batch sizes the profile covers (min/opt/max).
        workspace_mb: TensorRT workspace limit in MiB.
        timing_cache: TensorRT timing cache file (default: the run's ``RunDir.timing_cache_path``).
        opt_level: TensorRT builder optimisation level 0..5.
        calib_images: calibration images for TensorRT 10 INT8 (default: the run's data ``calib_size``).
        compute_capabilities: TensorRT-RTX targets (default: every target the library knows).
        tf32: allow TF32 in TensorRT's fp32 layers.

    Returns:
        ``{role: sidecar}``.
    """
    require_backend(backend)
    if compute_capabilities and backend != "tensorrt-rtx":
        raise ConfigError(f"--compute-capability applies to tensorrt-rtx only, not {backend}")
    roles = [r for r in ROLES if run_dir.onnx_path(r, "fp32").is_file()]
    if not roles:
        raise ArtifactError(f"no ONNX in {run_dir.export_dir}: run `ofb-deploy export {run_dir.root}` first")
    cache = timing_cache if timing_cache is not None else run_dir.timing_cache_path
    config = TrtBuildConfig(precision=precision, batches=batches, workspace_mb=workspace_mb, timing_cache=cache,
                            opt_level=opt_level, compute_capabilities=compute_capabilities, tf32=tf32)  # fmt: skip
    built = {}
    for role in roles:
        onnx_path, weak = _onnx_for(run_dir, role, backend, precision)
        weak_int8 = weak and precision == "int8"
        calibrator = _calibrator(run_dir, role, onnx_path, calib_images) if weak_int8 else None
        engine = run_dir.engine_path(role, backend, precision)
        built[role] = build_engine(onnx_path, engine, backend, precision, config=config, calibrator=calibrator)
        log.info("built %s", engine)
    record = run_dir.stage_record("build") or {}
    engines = {
        **record.get("engines", {}),
        **{f"{r}.{backend}.{precision}": d["engine_sha256"] for r, d in built.items()},
    }
    run_dir.mark_done("build", sha256_json(engines), engines=engines)
    return built


def build_plan(run_dir: RunDir, plan: list[tuple[str, str]], batches: tuple[int, ...]) -> dict[str, Any]:
    """Build every ``(backend, precision)`` of ``plan`` (``BuildConfig.plan``); one backend's failure is logged and
    recorded, not fatal, unless nothing could be built.

    Args:
        run_dir: the run (its export stage is done).
        plan: the pairs to build.
        batches: batch sizes the profiles cover.
    """
    built, failed = [], {}
    for backend, precision in plan:
        try:
            build_run(run_dir, backend, precision, batches)
            built.append(f"{backend}:{precision}")
        except ConfigError:
            raise
        except Exception as exc:  # one backend's failure (its library, an unsupported op) must not stop the rest
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("build %s %s failed: %s", backend, precision, reason)
            failed[f"{backend}:{precision}"] = reason
    if not built:
        raise ArtifactError(f"no engine could be built: {failed}")
    record = run_dir.stage_record("build") or {}
    run_dir.mark_done("build", record.get("inputs_hash", ""), engines=record.get("engines", {}), failed=failed)
    return {"built": built, "failed": failed}
