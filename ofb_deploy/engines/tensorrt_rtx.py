"""TensorRT-RTX (module ``tensorrt_rtx``): build targets, which GPUs can run an engine, and eager kernels.

The builder and runner are ``trt_build.py`` and ``tensorrt.py``; this module holds what only TensorRT-RTX has.

Targets. TensorRT-RTX installs without a GPU and builds engines on the CPU ("CPU-only AOT") for the compute
capabilities it is told; ``tensorrt_rtx.ComputeCapability`` lists the ones the installed version knows (1.7:
SM75, SM80, SM86, SM89, SM120, SM121 - no SM90 / H100, no SM87 / Jetson Orin). By default an engine targets
all of them; one exception: TensorRT-RTX has no float32 GEMM on Turing (SM75; the build fails with "FP32 GEMM is
not supported"), so a network with a float32 MatMul (fp32, and the attention of our QDQ INT8) skips SM75 and
the sidecar says why. ``--compute-capability`` overrides the list (``current``: this GPU only).

Running. An engine runs on a GPU whose SM the library supports and the engine was built for. RTX specialises
kernels for the actual shapes at run time, lazily by default, so a short warm-up would time a mix of generic and
specialised kernels; the execution context is therefore made with an ``IRuntimeConfig`` that specialises
eagerly (at shape-setting time), with a runtime cache file next to the engine so later processes skip the work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ofb_deploy.engines.registry import cuda_device_name
from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

TURING = "sm75"
KERNEL_SPECIALIZATION = "eager"


def sm_name(capability: tuple[int, int]) -> str:
    """``(8, 9)`` -> ``sm89``."""
    return f"sm{capability[0]}{capability[1]}"


def library_targets(trt: Any) -> list[str]:
    """The compute capabilities the installed TensorRT-RTX builds for, lower-case and ascending."""
    names = [n.lower() for n in trt.ComputeCapability.__members__ if n.startswith("SM")]
    return sorted(names, key=lambda n: int(n[2:]))


def has_float32_matmul(trt: Any, network: Any) -> bool:
    """True when a MatrixMultiply layer of the (strongly typed) network reads float32."""
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.MATRIX_MULTIPLY and layer.get_input(0).dtype == trt.DataType.FLOAT:
            return True
    return False


def resolve_targets(trt: Any, requested: Sequence[str], network: Any) -> tuple[list[str], dict[str, str]]:
    """The targets to build for, and the default targets left out with the reason.

    Args:
        trt: the ``tensorrt_rtx`` module.
        requested: names such as ``sm89`` or ``current``; empty: every target the library knows.
        network: the parsed network (decides whether Turing can be a target).
    """
    known = library_targets(trt)
    names = [n.strip().lower() for n in requested if n.strip()]
    if names:
        bad = [n for n in names if n not in known and n != "current"]
        if bad:
            raise ConfigError(f"unknown compute capability {bad}; TensorRT-RTX {trt.__version__} knows {known}")
        if "current" in names and len(names) > 1:
            raise ConfigError("compute capability 'current' (this GPU) cannot be combined with named targets")
        if "current" in names:
            if cuda_device_name() is None:
                raise ConfigError("compute capability 'current' needs a GPU; name targets such as sm89 instead")
        return names, {}
    skipped = {}
    if TURING in known and has_float32_matmul(trt, network):
        skipped[TURING] = "TensorRT-RTX has no float32 GEMM on Turing; this network has float32 MatMuls"
    return [n for n in known if n not in skipped], skipped


def set_targets(trt: Any, config_trt: Any, targets: list[str]) -> None:
    """Put ``targets`` into the builder config."""
    config_trt.num_compute_capabilities = len(targets)
    for i, name in enumerate(targets):
        config_trt.set_compute_capability(getattr(trt.ComputeCapability, name.upper()), i)


def device_reason(trt: Any, capability: tuple[int, int] | None, gpu: str | None) -> str:
    """Why this machine cannot run TensorRT-RTX engines ("" when it can).

    Args:
        trt: the ``tensorrt_rtx`` module.
        capability: the GPU's compute capability, ``None`` without a GPU.
        gpu: the GPU's name.
    """
    known = library_targets(trt)
    if capability is None:
        return f"running a TensorRT-RTX engine needs an NVIDIA GPU of {', '.join(known)}; none found"
    if sm_name(capability) not in known:
        return (
            f"TensorRT-RTX {trt.__version__} runs on {', '.join(known)} only; this GPU ({gpu}) is "
            f"{sm_name(capability)}: use the tensorrt backend"
        )
    return ""


def engine_target_reason(targets: list[str], capability: tuple[int, int] | None) -> str:
    """Why an engine built for ``targets`` cannot run on a GPU of ``capability`` ("" when it can)."""
    if capability is None or not targets or "current" in targets or sm_name(capability) in targets:
        return ""  # NOTE: "current" engines are checked by GPU name against the sidecar instead
    return (
        f"built for {', '.join(targets)}, this GPU is {sm_name(capability)}: rebuild with "
        f"--compute-capability {sm_name(capability)}"
    )


def runtime_info(cache_path: Path | None) -> dict[str, Any]:
    """What the sidecar records about the run-time setup ``make_context`` uses."""
    return {"kernel_specialization": KERNEL_SPECIALIZATION, "runtime_cache": cache_path.name if cache_path else None}


def make_context(trt: Any, engine: Any, cache_path: Path | None) -> tuple[Any, Any]:
    """An execution context that specialises kernels eagerly, and its runtime cache (loaded from ``cache_path``).

    NOTE: needs a GPU (``engine`` is deserialized); nothing here runs on this project's CPU-only CI.

    Args:
        trt: the ``tensorrt_rtx`` module.
        engine: the deserialized ``ICudaEngine``.
        cache_path: runtime cache file next to the engine (``None``: keep it in memory only).
    """
    config = engine.create_runtime_config()
    config.dynamic_shapes_kernel_specialization_strategy = trt.DynamicShapesKernelSpecializationStrategy.EAGER
    cache = config.create_runtime_cache()
    if cache_path is not None and cache_path.is_file():
        # NOTE: deserialize() refuses (returns False) a cache from another GPU, driver or TensorRT-RTX version
        if not cache.deserialize(cache_path.read_bytes()):
            log.warning("runtime cache %s is from another GPU or version; specialising kernels again", cache_path)
    if not config.set_runtime_cache(cache):
        log.warning("TensorRT-RTX refused the runtime cache; kernels are specialised again in each process")
    context = engine.create_execution_context(config)
    return context, cache


def save_runtime_cache(cache: Any, cache_path: Path | None) -> None:
    """Write the runtime cache (atomically) so the next process reuses the specialised kernels."""
    if cache is None or cache_path is None:
        return
    blob = cache.serialize()
    if blob is not None and len(blob):
        atomic_write_bytes(cache_path, bytes(blob))
