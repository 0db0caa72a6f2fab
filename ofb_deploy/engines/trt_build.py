"""One engine builder for TensorRT 10, TensorRT 11 and TensorRT-RTX.

All three share one API: ``Builder.create_network``, ``OnnxParser``, ``set_memory_pool_limit``,
an optimization profile with min/opt/max batch, a timing cache and ``build_serialized_network``. They differ in
typing, detected at run time from the imported module (``is_strongly_typed``):

* TensorRT 10 (``BuilderFlag.FP16`` exists): weakly typed. fp16 and int8 are builder flags on the fp32 ONNX;
  int8 uses an ``IInt8EntropyCalibrator2`` on a calibration profile of its own (min = opt = max = the calibration
  batch), because TensorRT calibrates at the calibration profile's *opt* shape whatever the calibrator says.
* TensorRT 11 and TensorRT-RTX: strongly typed. The precision is in the ONNX (``engines.precision`` checks it).

TF32 is on by default in every TensorRT builder; an "fp32" engine then runs its matmuls with 10-bit mantissas.
It is off here unless ``TrtBuildConfig.tf32`` asks for it (Polygraphy makes the same choice), and the sidecar
records which. TensorRT-RTX builds without a GPU for the compute capabilities in ``tensorrt_rtx.resolve_targets``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ofb_deploy.engines.config import TrtBuildConfig
from ofb_deploy.engines.tensorrt import is_strongly_typed, library_name
from ofb_deploy.engines.tensorrt_rtx import resolve_targets, set_targets
from ofb_deploy.errors import ArtifactError
from ofb_deploy.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)


def parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: Path) -> tuple[Any, Any]:
    """A network parsed from ``onnx_path`` (strongly typed where the library is), and its parser."""
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if is_strongly_typed(trt) and strongly is not None:
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ArtifactError(f"{library_name(trt)} cannot parse {onnx_path}: {'; '.join(errors) or 'unknown error'}")
    return network, parser


def make_profile(builder: Any, network: Any, batches: tuple[int, int, int]) -> tuple[Any, dict[str, Any]]:
    """An optimization profile over the batch axis: ``(min, opt, max)`` batch, every other dim fixed.

    Args:
        builder: the TensorRT builder.
        network: the parsed network.
        batches: min, opt and max batch.
    """
    profile = builder.create_optimization_profile()
    shapes: dict[str, Any] = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        if any(d < 0 for d in dims[1:]):
            raise ArtifactError(f"input {tensor.name} has dynamic non-batch dims {dims}; only the batch may vary")
        shape = [[b, *dims[1:]] for b in batches]
        profile.set_shape(tensor.name, *shape)
        shapes[tensor.name] = {"min": shape[0], "opt": shape[1], "max": shape[2]}
    return profile, shapes


def _set_precision(trt: Any, builder: Any, network: Any, config_trt: Any, config: TrtBuildConfig, calib: Any) -> dict:
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    info: dict[str, Any] = {"tf32": config.tf32 if tf32 is not None else None}
    if tf32 is not None and config.tf32:
        config_trt.set_flag(tf32)
    elif tf32 is not None:
        config_trt.clear_flag(tf32)  # NOTE: on by default in TensorRT 10, 11 and RTX
    if is_strongly_typed(trt):
        return info  # NOTE: the ONNX's float16 / QDQ types decide; there are no precision flags to set
    # NOTE: TensorRT 10 only from here on; nothing here can run without TensorRT 10 and a GPU
    if config.precision in ("fp16", "int8"):
        config_trt.set_flag(trt.BuilderFlag.FP16)  # int8 layers fall back to fp16, not fp32
    if config.precision == "int8":
        config_trt.set_flag(trt.BuilderFlag.INT8)
        if calib is not None:
            batch = int(calib.get_batch_size())
            profile, shapes = make_profile(builder, network, (batch, batch, batch))
            config_trt.int8_calibrator = calib
            config_trt.set_calibration_profile(profile)
            info["calibration_profile"] = shapes
    return info


def make_builder_config(
    trt: Any,
    builder: Any,
    network: Any,
    config: TrtBuildConfig,
    calibrator: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """The ``IBuilderConfig`` for ``config`` (profile, precision, TF32, targets) and what it chose, for the sidecar.

    Args:
        trt: the imported ``tensorrt`` or ``tensorrt_rtx`` module.
        builder: its builder.
        network: the parsed network.
        config: build options.
        calibrator: TensorRT 10 INT8 calibrator (weakly typed int8 only).
    """
    config_trt = builder.create_builder_config()
    if config.workspace_mb is not None:
        config_trt.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    if config.opt_level is not None:
        config_trt.builder_optimization_level = config.opt_level
    profile, shapes = make_profile(builder, network, config.profile)
    config_trt.add_optimization_profile(profile)
    info: dict[str, Any] = {"profile": shapes, "strongly_typed": is_strongly_typed(trt)}
    info |= _set_precision(trt, builder, network, config_trt, config, calibrator)
    info["compute_capabilities"], info["skipped_targets"] = [], {}
    if library_name(trt) == "tensorrt_rtx":
        targets, skipped = resolve_targets(trt, config.compute_capabilities, network)
        set_targets(trt, config_trt, targets)
        info["compute_capabilities"], info["skipped_targets"] = targets, skipped
    info |= {"opt_level": config.opt_level, "workspace_mb": config.workspace_mb}
    return config_trt, info


def _io_specs(network: Any) -> dict[str, Any]:
    def spec(t: Any) -> dict[str, Any]:
        return {"shape": list(t.shape), "dtype": str(t.dtype).rsplit(".", 1)[-1].lower()}

    return {
        "inputs": {network.get_input(i).name: spec(network.get_input(i)) for i in range(network.num_inputs)},
        "outputs": {network.get_output(i).name: spec(network.get_output(i)) for i in range(network.num_outputs)},
    }


def build_serialized_engine(
    trt: Any,
    onnx_path: Path,
    config: TrtBuildConfig,
    calibrator: Any = None,
    info: dict[str, Any] | None = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine with ``config``.

    Args:
        trt: the imported ``tensorrt`` or ``tensorrt_rtx`` module.
        onnx_path: the ONNX (float16 / QDQ for strongly typed fp16 / int8 builds).
        config: build options.
        calibrator: TensorRT 10 INT8 calibrator (weakly typed int8 only).
        info: filled with the profile, I/O specs, targets and flags, for the sidecar.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(trt, builder, logger, Path(onnx_path))
    config_trt, chosen = make_builder_config(trt, builder, network, config, calibrator)
    cache = None
    cpu_only = library_name(trt) == "tensorrt_rtx" and "current" not in chosen["compute_capabilities"]
    if config.timing_cache is not None and cpu_only:
        # NOTE: a timing cache records GPU kernel timings; a CPU-only AOT build has none to record or reuse
        log.warning("timing cache %s ignored: a CPU-only TensorRT-RTX build times no kernels", config.timing_cache)
    elif config.timing_cache is not None:
        blob = Path(config.timing_cache).read_bytes() if Path(config.timing_cache).is_file() else b""
        cache = config_trt.create_timing_cache(blob)
        config_trt.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config_trt)
    if serialized is None:
        targets = chosen["compute_capabilities"]
        where = f" for {', '.join(targets)}" if targets else ""
        raise ArtifactError(f"{library_name(trt)} failed to build an engine from {onnx_path}{where} (see the log)")
    if cache is not None:
        atomic_write_bytes(config.timing_cache, bytes(config_trt.get_timing_cache().serialize()))
    if info is not None:
        info |= {**chosen, **_io_specs(network)}
        info["timing_cache"] = str(config.timing_cache) if cache is not None else None
    return bytes(serialized)
