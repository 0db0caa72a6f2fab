"""TensorRT engines: one builder for TensorRT 10, TensorRT 11 and TensorRT-RTX, and ``TrtRunner``.

All three share the API DEPLOY.md lists: ``Builder.create_network``, ``OnnxParser``, ``set_memory_pool_limit``,
an optimization profile with min/opt/max batch, a timing cache, ``build_serialized_network``, name-based I/O
and ``execute_async_v3``. They differ in typing, detected at run time from the imported module:

* TensorRT 10 (``BuilderFlag.FP16`` exists): weakly typed. fp16 and int8 are builder flags on the fp32 ONNX;
  int8 uses an ``IInt8EntropyCalibrator2`` (with cache) and a calibration profile.
* TensorRT 11 and TensorRT-RTX: strongly typed. The precision is in the ONNX: fp16 from the float16 ONNX,
  int8 from the QDQ ONNX; no precision flags exist.

TensorRT-RTX builds on a machine without a GPU ("CPU-only AOT") for the compute capabilities it is told;
deserializing needs an RTX-class GPU. Device memory and streams come from torch's CUDA API.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.engines.base import Runner, TensorSpec
from ofb_deploy.errors import ArtifactError, BackendUnavailableError, ConfigError
from ofb_deploy.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

INSTALL = {
    "tensorrt": "pip install 'ofb-deploy[gpu]' (tensorrt, from NVIDIA's package index) on a machine with a CUDA GPU",
    "tensorrt_rtx": "pip install tensorrt-rtx",
}


def import_trt(library: str = "tensorrt") -> Any:
    """Import ``tensorrt`` or ``tensorrt_rtx``, or raise a one-line ``BackendUnavailableError``."""
    if library not in INSTALL:
        raise ConfigError(f"unknown TensorRT library {library!r}; choose tensorrt or tensorrt_rtx")
    try:
        return importlib.import_module(library)
    except Exception as exc:  # ImportError, or OSError for a missing libnvinfer: both mean not usable
        raise BackendUnavailableError(f"{library} is not available ({type(exc).__name__}): {INSTALL[library]}") from exc


def is_strongly_typed(trt: Any) -> bool:
    """True for TensorRT >= 11 and TensorRT-RTX (no FP16/INT8 builder flags: precision comes from the ONNX)."""
    return not hasattr(trt.BuilderFlag, "FP16")


def library_name(trt: Any) -> str:
    return "tensorrt_rtx" if trt.__name__.startswith("tensorrt_rtx") else "tensorrt"


@dataclass
class TrtBuildConfig:
    """Engine build options.

    Args:
        precision: ``fp32``, ``fp16`` or ``int8`` (strongly typed builds check that the ONNX matches).
        batches: batch sizes the profile must cover; min/opt/max are min, median and max of them.
        workspace_mb: workspace memory pool limit in MiB (``None``: TensorRT's default).
        timing_cache: file to load the timing cache from and save it back to.
        opt_level: builder optimisation level 0..5 (``None``: default 3).
        compute_capabilities: TensorRT-RTX targets such as ``["sm89"]``; empty: the current GPU, or SM89
            (RTX 40) when building without a GPU.
    """

    precision: str = "fp32"
    batches: tuple[int, ...] = (1, 8, 32)
    workspace_mb: int | None = None
    timing_cache: Path | None = None
    opt_level: int | None = None
    compute_capabilities: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ConfigError(f"unknown precision {self.precision!r}; choose fp32, fp16 or int8")
        if not self.batches or min(self.batches) < 1:
            raise ConfigError(f"batch sizes must be positive integers, got {self.batches}")
        if self.opt_level is not None and not 0 <= self.opt_level <= 5:
            raise ConfigError(f"builder optimisation level must be 0..5, got {self.opt_level}")
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise ConfigError(f"workspace must be >= 1 MiB, got {self.workspace_mb}")

    @property
    def profile(self) -> tuple[int, int, int]:
        """(min, opt, max) batch: opt is the median requested size."""
        ordered = sorted(set(self.batches))
        return ordered[0], ordered[len(ordered) // 2], ordered[-1]


def _parse(trt: Any, builder: Any, logger: Any, onnx_path: Path) -> tuple[Any, Any]:
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


def _profile(builder: Any, network: Any, config: TrtBuildConfig) -> tuple[Any, dict[str, Any]]:
    lo, opt, hi = config.profile
    profile = builder.create_optimization_profile()
    shapes: dict[str, Any] = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        if any(d < 0 for d in dims[1:]):
            raise ArtifactError(f"input {tensor.name} has dynamic non-batch dims {dims}; only the batch may vary")
        shape = [[b, *dims[1:]] for b in (lo, opt, hi)]
        profile.set_shape(tensor.name, *shape)
        shapes[tensor.name] = {"min": shape[0], "opt": shape[1], "max": shape[2]}
    return profile, shapes


def _set_precision(trt: Any, builder: Any, config_trt: Any, config: TrtBuildConfig, profile: Any, calib: Any) -> None:
    if is_strongly_typed(trt):
        return  # NOTE: strongly typed: the ONNX's float16 / QDQ types decide; there are no flags to set
    if config.precision in ("fp16", "int8"):
        config_trt.set_flag(trt.BuilderFlag.FP16)  # int8 layers fall back to fp16, not fp32
    if config.precision == "int8":
        config_trt.set_flag(trt.BuilderFlag.INT8)
        if calib is not None:
            config_trt.int8_calibrator = calib
            config_trt.set_calibration_profile(profile)


def _set_targets(trt: Any, config_trt: Any, config: TrtBuildConfig) -> list[str]:
    if library_name(trt) != "tensorrt_rtx":
        return []
    from ofb_deploy.engines.registry import cuda_device_name

    names = [c.upper() for c in config.compute_capabilities] or (["CURRENT"] if cuda_device_name() else ["SM89"])
    try:
        caps = [getattr(trt.ComputeCapability, n) for n in names]
    except AttributeError as exc:
        known = [n for n in dir(trt.ComputeCapability) if n.startswith("SM")]
        raise ConfigError(f"unknown compute capability in {names}; TensorRT-RTX knows {known}") from exc
    config_trt.num_compute_capabilities = len(caps)
    for i, cap in enumerate(caps):
        config_trt.set_compute_capability(cap, i)
    return [n.lower() for n in names]


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
    network, _parser = _parse(trt, builder, logger, Path(onnx_path))
    config_trt = builder.create_builder_config()
    if config.workspace_mb is not None:
        config_trt.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    if config.opt_level is not None:
        config_trt.builder_optimization_level = config.opt_level
    profile, shapes = _profile(builder, network, config)
    config_trt.add_optimization_profile(profile)
    _set_precision(trt, builder, config_trt, config, profile, calibrator)
    targets = _set_targets(trt, config_trt, config)
    cache = None
    cpu_only = library_name(trt) == "tensorrt_rtx" and "current" not in targets
    if config.timing_cache is not None and cpu_only:
        # NOTE: a timing cache records GPU kernel timings; a CPU-only AOT build has none to record or reuse
        log.warning("timing cache %s ignored: a CPU-only TensorRT-RTX build times no kernels", config.timing_cache)
    elif config.timing_cache is not None:
        blob = Path(config.timing_cache).read_bytes() if Path(config.timing_cache).is_file() else b""
        cache = config_trt.create_timing_cache(blob)
        config_trt.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config_trt)
    if serialized is None:
        raise ArtifactError(f"{library_name(trt)} failed to build an engine from {onnx_path} (see the log above)")
    if cache is not None:
        atomic_write_bytes(config.timing_cache, bytes(config_trt.get_timing_cache().serialize()))
    if info is not None:
        info |= {"profile": shapes, **_io_specs(network), "strongly_typed": is_strongly_typed(trt)}
        info |= {"compute_capabilities": targets, "opt_level": config.opt_level, "workspace_mb": config.workspace_mb}
        info["timing_cache"] = str(config.timing_cache) if cache is not None else None
    return bytes(serialized)


_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64", "INT8": "int8"}


class TrtRunner(Runner):
    """Run a serialized TensorRT (10 or 11) or TensorRT-RTX engine on the GPU.

    Args:
        engine: serialized engine bytes, or a loader returning them (``TrtEngineFromPath``/``FromOnnx``).
        library: ``tensorrt`` or ``tensorrt_rtx``.
        precision: label for ``describe()``.
        name: label for reports.
    """

    backend = "tensorrt"

    def __init__(
        self, engine: Any, library: str = "tensorrt", precision: str = "fp32", name: str | None = None
    ) -> None:
        self.backend = "tensorrt-rtx" if library == "tensorrt_rtx" else "tensorrt"
        super().__init__(name)
        self._source = engine
        self.library = library
        self.precision = precision
        self._trt: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._buffers: dict[str, Any] = {}

    @classmethod
    def from_target(
        cls, target: Path, library: str = "tensorrt", precision: str = "fp32", name: str | None = None
    ) -> TrtRunner:
        """A runner for an ``.engine`` file, or one that builds ``target`` if it is an ``.onnx``."""
        from ofb_deploy.engines.loaders import TrtEngineFromOnnx, TrtEngineFromPath

        if Path(target).suffix == ".onnx":
            loader: Any = TrtEngineFromOnnx(Path(target), TrtBuildConfig(precision=precision), library)
        else:
            loader = TrtEngineFromPath(Path(target))
        return cls(loader, library=library, precision=precision, name=name)

    def _check_compatible(self) -> None:
        """Engines are tied to the library version and (for TensorRT) the GPU model: compare with the sidecar."""
        from ofb_deploy.engines.loaders import TrtEngineFromPath
        from ofb_deploy.engines.registry import backend_status, cuda_device_name
        from ofb_deploy.engines.sidecar import read_sidecar, sidecar_path

        src = self._source
        if not isinstance(src, TrtEngineFromPath) or not sidecar_path(src.path).is_file():
            return
        doc = read_sidecar(src.path)
        have = backend_status(self.backend).version
        if have and doc["library_version"] != have:
            raise ArtifactError(
                f"{src.path} was built with {doc['library']} {doc['library_version']}, this machine has {have}: "
                "rebuild it with `ofb-deploy build`"
            )
        gpu = cuda_device_name()
        if self.library == "tensorrt" and gpu and doc["gpu"] and doc["gpu"] != gpu:
            raise ArtifactError(f"{src.path} was built for {doc['gpu']}, this GPU is {gpu}: rebuild it")

    def _activate(self) -> None:
        from ofb_deploy.engines.registry import backend_status

        self._check_compatible()
        status = backend_status(self.backend)
        if not status.can_run:
            raise BackendUnavailableError(f"cannot run {self.backend} here: {status.reason}")
        import torch

        self._trt = trt = import_trt(self.library)
        blob = self._source() if callable(self._source) else self._source
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise ArtifactError(f"{self.library} cannot deserialize the engine: built for another GPU or version?")
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream()

    def _deactivate(self) -> None:
        self._buffers = {}
        self._context = self._engine = self._runtime = self._stream = None

    def _tensors(self, mode: str) -> list[str]:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        want = getattr(self._trt.TensorIOMode, mode)
        return [n for n in names if self._engine.get_tensor_mode(n) == want]

    def _dtype(self, name: str) -> str:
        return _TORCH_DTYPES.get(str(self._engine.get_tensor_dtype(name)).rsplit(".", 1)[-1], "float32")

    def _input_specs(self) -> list[TensorSpec]:
        specs = []
        for name in self._tensors("INPUT"):
            shape = tuple(d if d >= 0 else "batch" for d in self._engine.get_tensor_shape(name))
            specs.append(TensorSpec(name, shape, self._dtype(name)))
        return specs

    def _bind(self, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        bound: dict[str, Any] = {}
        for name in self._tensors("INPUT"):
            x = torch.from_numpy(np.ascontiguousarray(feed[name])).to("cuda", getattr(torch, self._dtype(name)))
            self._context.set_input_shape(name, tuple(x.shape))
            self._context.set_tensor_address(name, x.data_ptr())
            bound[name] = x
        for name in self._tensors("OUTPUT"):
            shape = tuple(self._context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=getattr(torch, self._dtype(name)), device="cuda")
            self._context.set_tensor_address(name, out.data_ptr())
            bound[name] = out
        return bound

    def _run_bound(self, bound: dict[str, Any]) -> None:
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise ArtifactError(f"{self.library} execute_async_v3 failed")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        bound = self._bind(feed)
        self._run_bound(bound)
        self._stream.synchronize()
        return {name: bound[name].float().cpu().numpy() for name in self._tensors("OUTPUT")}

    def synchronize(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    def describe(self) -> dict[str, Any]:
        from ofb_deploy.engines.registry import backend_status, cuda_device_name

        info = {**super().describe(), "library": self.library, "version": backend_status(self.backend).version}
        info |= {"precision": self.precision, "device_name": cuda_device_name()}
        if self._trt is not None:
            info["strongly_typed"] = is_strongly_typed(self._trt)
        return info
