"""The build stage: an engine (plus JSON sidecar) per model role, backend and precision (``engines.builder``).

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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import ROLES, RunDir, trt_calib_cache
from ofb_deploy.calibrate import CalibrationSource
from ofb_deploy.data import run_data
from ofb_deploy.engines.builder import CALIB_BATCH, build_engine
from ofb_deploy.engines.config import DEFAULT_BATCHES, TrtBuildConfig
from ofb_deploy.engines.registry import require_backend
from ofb_deploy.engines.tensorrt import import_trt, is_strongly_typed
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.export.run import add_precision
from ofb_deploy.models.checkpoint import read_model_dir_spec
from ofb_deploy.utils.io import sha256_file, sha256_json

log = logging.getLogger(__name__)


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
    log.info("making %s from the fp32 ONNX (with parity)", path.name)
    add_precision(run_dir, role, source_precision)
    return path, weak


def _calibrator(run_dir: RunDir, role: str, onnx_path: Path, calib_images: int | None) -> Any:
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
