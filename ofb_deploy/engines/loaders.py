"""Loaders: zero-argument callables that produce a backend object when a runner activates (Polygraphy style).

A runner takes either the object itself or one of these; nothing heavy is imported or built before the call.
``OrtSessionFromOnnx`` makes an ONNX Runtime session for one execution provider (and can save the optimised
model; for the TensorRT EP it passes the profile shapes, caches and precision flags of ``trt_provider_options``).
``TrtEngineFromOnnx`` builds a TensorRT / TensorRT-RTX engine (see ``trt_build.py``) and
``TrtEngineFromPath`` reads a serialized one; both give serialized bytes that the runner deserializes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ArtifactError, BackendUnavailableError, ConfigError
from ofb_deploy.onnxtools.precision import check_build_precision

# provider short name -> (ORT provider, what to install when it is missing)
ORT_PROVIDERS = {
    "cpu": ("CPUExecutionProvider", "pip install onnxruntime"),
    "cuda": ("CUDAExecutionProvider", "pip install 'ofb-deploy[gpu]' (onnxruntime-gpu) on a machine with a CUDA GPU"),
    "trt": ("TensorrtExecutionProvider", "pip install 'ofb-deploy[gpu]' (onnxruntime-gpu + tensorrt) with a CUDA GPU"),
}


def import_onnxruntime() -> Any:
    """``onnxruntime``, or a one-line ``BackendUnavailableError``."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError("onnxruntime is not installed: pip install onnxruntime") from exc
    return onnxruntime


def ort_provider_available(provider: str) -> bool:
    """True when this ONNX Runtime build offers ``provider`` (``cpu``, ``cuda`` or ``trt``)."""
    try:
        ort = import_onnxruntime()
    except BackendUnavailableError:
        return False
    return ORT_PROVIDERS[provider][0] in ort.get_available_providers()


def shape_string(shapes: dict[str, list[int]]) -> str:
    """``{"input": [1, 3, 224, 224]}`` -> ``input:1x3x224x224`` (the TensorRT EP's profile syntax)."""
    return ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())


def trt_provider_options(
    precision: str = "fp32",
    profile: dict[str, dict[str, list[int]]] | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """TensorRT EP options for one engine.

    NOTE: the TensorRT EP is weakly typed in every ONNX Runtime release up to 1.31 (its library has no strongly
    typed option), so fp16 and int8 are flags here as with TensorRT 10: fp16 on the float16 ONNX, int8 (plus
    fp16 for the layers left in float) on the QDQ ONNX, where the Q/DQ scales replace a calibration table.
    Without explicit min/opt/max shapes the EP rebuilds its engine for every new batch size, and without the
    engine cache for every session. None of this runs without ``onnxruntime-gpu`` and a GPU.

    Args:
        precision: ``fp32``, ``fp16`` or ``int8``.
        profile: input name to ``{"min", "opt", "max"}`` shapes (the sidecar's ``profile``; other keys ignored).
        cache_dir: engine and timing cache folder (``None``: no caches).
    """
    options: dict[str, Any] = {"trt_fp16_enable": precision in ("fp16", "int8"), "trt_int8_enable": precision == "int8"}
    shapes = {name: p for name, p in (profile or {}).items() if isinstance(p, dict)}  # skips "batches"
    if shapes:
        for key in ("min", "opt", "max"):
            options[f"trt_profile_{key}_shapes"] = shape_string({name: p[key] for name, p in shapes.items()})
    if cache_dir is not None:
        options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir)}
        options |= {"trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir)}
    return options


def batch_profile(inputs: dict[str, dict[str, Any]], batches: tuple[int, int, int]) -> dict[str, dict[str, list[int]]]:
    """Min/opt/max shapes over the batch axis of every input (``check_onnx``'s ``inputs`` field).

    Args:
        inputs: input name to ``{"shape": [batch, ...]}``; every dim but the first must be fixed.
        batches: min, opt and max batch.
    """
    profile = {}
    for name, spec in inputs.items():
        dims = list(spec["shape"])[1:]
        if not all(isinstance(d, int) and d > 0 for d in dims):
            raise ArtifactError(f"input {name} has dynamic non-batch dims {spec['shape']}; only the batch may vary")
        profile[name] = {key: [b, *dims] for key, b in zip(("min", "opt", "max"), batches, strict=True)}
    return profile


@dataclass
class OrtSessionFromOnnx:
    """Make an ``onnxruntime.InferenceSession`` for one provider.

    Args:
        path: the ONNX file.
        provider: ``cpu``, ``cuda`` or ``trt`` (TensorRT EP, falling back to CUDA then CPU for unsupported nodes).
        threads: intra-op threads (``None``: ORT's default, one per physical core).
        optimized_model_path: also write ORT's optimised graph there (offline optimisation).
        precision: ``trt`` only: fp16 / int8 flags of the TensorRT EP (see ``trt_provider_options``).
        profile: ``trt`` only: min/opt/max input shapes, so batches inside them reuse one TensorRT engine.
        trt_cache_dir: ``trt`` only: where the TensorRT EP keeps its engine and timing caches.
        basic_only: only ORT's basic (hardware-independent) graph optimisations.
    """

    path: Path
    provider: str = "cpu"
    threads: int | None = None
    optimized_model_path: Path | None = None
    precision: str = "fp32"
    profile: dict[str, dict[str, list[int]]] | None = None
    trt_cache_dir: Path | None = None
    basic_only: bool = False

    def trt_options(self) -> dict[str, Any]:
        """The TensorRT EP options this loader passes."""
        return trt_provider_options(self.precision, self.profile, self.trt_cache_dir)

    def _providers(self) -> list[Any]:
        if self.provider == "cpu":
            return ["CPUExecutionProvider"]
        if self.provider == "cuda":
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return [("TensorrtExecutionProvider", self.trt_options()), "CUDAExecutionProvider", "CPUExecutionProvider"]

    def __call__(self) -> Any:
        ort = import_onnxruntime()
        if self.provider not in ORT_PROVIDERS:
            raise ConfigError(f"unknown ORT provider {self.provider!r}; choose from {', '.join(ORT_PROVIDERS)}")
        wanted, install = ORT_PROVIDERS[self.provider]
        if wanted not in ort.get_available_providers():
            raise BackendUnavailableError(f"ONNX Runtime has no {wanted} here: {install}")
        if not Path(self.path).is_file():
            raise ArtifactError(f"ONNX file not found: {self.path} (run `ofb-deploy export` first)")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; ORT's warnings about unused initialisers are noise here
        if self.threads is not None:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        if self.optimized_model_path is not None:
            opts.optimized_model_filepath = str(self.optimized_model_path)
        if self.basic_only:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            session = ort.InferenceSession(str(self.path), sess_options=opts, providers=self._providers())
        except Exception as exc:  # ORT raises its own exception classes (Fail, InvalidGraph, ...) for a bad file
            raise ArtifactError(f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        # NOTE: ORT silently falls back to CPU when a GPU provider fails to initialise; that is not ort-cuda
        if session.get_providers()[0] != wanted:
            raise BackendUnavailableError(f"{wanted} failed to initialise (got {session.get_providers()}): {install}")
        return session


@dataclass
class TrtEngineFromPath:
    """Read a serialized TensorRT / TensorRT-RTX engine file.

    Args:
        path: the ``.engine`` file.
    """

    path: Path

    def __call__(self) -> bytes:
        if not Path(self.path).is_file():
            raise ArtifactError(f"engine not found: {self.path} (run `ofb-deploy build` first)")
        return Path(self.path).read_bytes()


@dataclass
class TrtEngineFromOnnx:
    """Build a serialized engine from an ONNX file (``tensorrt.build_serialized_engine``).

    Args:
        path: the ONNX file (float16 or QDQ ONNX for strongly typed TensorRT 11 / TensorRT-RTX).
        config: the build options (``trt_build.TrtBuildConfig``).
        library: ``tensorrt`` or ``tensorrt_rtx``.
        calibrator: a TensorRT 10 INT8 calibrator (``CalibrationSource.trt_calibrator``), or ``None``.
    """

    path: Path
    config: Any
    library: str = "tensorrt"
    calibrator: Any = None

    def __call__(self) -> bytes:
        # lazy: tensorrt.py imports this module (and trt_build imports tensorrt.py)
        from ofb_deploy.engines.tensorrt import import_trt, is_strongly_typed
        from ofb_deploy.engines.trt_build import build_serialized_engine

        trt = import_trt(self.library)
        weak = not is_strongly_typed(trt)
        backend = "tensorrt-rtx" if self.library == "tensorrt_rtx" else "tensorrt"
        check_build_precision(Path(self.path), self.config.precision, backend, weak, self.calibrator is not None)
        return build_serialized_engine(trt, Path(self.path), self.config, calibrator=self.calibrator)
