"""Loaders: zero-argument callables that produce a backend object when a runner activates (Polygraphy style).

A runner takes either the object itself or one of these; nothing heavy is imported or built before the call.
``OrtSessionFromOnnx`` makes an ONNX Runtime session for one execution provider (and can save the optimised
model). ``TrtEngineFromOnnx`` builds a TensorRT / TensorRT-RTX engine (see ``trt_build.py``) and
``TrtEngineFromPath`` reads a serialized one; both give serialized bytes that the runner deserializes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ArtifactError, BackendUnavailableError, ConfigError

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


@dataclass
class OrtSessionFromOnnx:
    """Make an ``onnxruntime.InferenceSession`` for one provider.

    Args:
        path: the ONNX file.
        provider: ``cpu``, ``cuda`` or ``trt`` (TensorRT EP, falling back to CUDA then CPU for unsupported nodes).
        threads: intra-op threads (``None``: ORT's default, one per physical core).
        optimized_model_path: also write ORT's optimised graph there (offline optimisation).
        trt_fp16: let the TensorRT EP use FP16 kernels.
        trt_cache_dir: where the TensorRT EP keeps its engine and timing caches.
    """

    path: Path
    provider: str = "cpu"
    threads: int | None = None
    optimized_model_path: Path | None = None
    trt_fp16: bool = False
    trt_cache_dir: Path | None = None

    def _providers(self) -> list[Any]:
        if self.provider == "cpu":
            return ["CPUExecutionProvider"]
        if self.provider == "cuda":
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        options: dict[str, Any] = {"trt_fp16_enable": self.trt_fp16}
        if self.trt_cache_dir is not None:
            options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(self.trt_cache_dir)}
            options |= {"trt_timing_cache_enable": True, "trt_timing_cache_path": str(self.trt_cache_dir)}
        return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider"]

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
        from ofb_deploy.engines.precision import check_build_precision
        from ofb_deploy.engines.tensorrt import import_trt, is_strongly_typed
        from ofb_deploy.engines.trt_build import build_serialized_engine

        trt = import_trt(self.library)
        weak = not is_strongly_typed(trt)
        backend = "tensorrt-rtx" if self.library == "tensorrt_rtx" else "tensorrt"
        check_build_precision(Path(self.path), self.config.precision, backend, weak, self.calibrator is not None)
        return build_serialized_engine(trt, Path(self.path), self.config, calibrator=self.calibrator)
