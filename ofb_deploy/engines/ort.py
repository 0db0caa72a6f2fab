"""``OrtRunner``: ONNX Runtime on the CPU, CUDA or TensorRT execution provider (backends ``ort-*``).

The session comes from ``OrtSessionFromOnnx`` (``ort_session_for`` picks its TensorRT EP options), or is passed
in. Inputs and outputs are matched by name; a float16 model's float32 I/O (the float16 export keeps its inputs
and outputs float32) needs no casting here. On a GPU provider ``bind()`` copies the batch to the device once
with an ``IOBinding`` so timed runs exclude host-device copies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.artifacts import ort_trt_cache_dir, sidecar_path
from ofb_deploy.engines.base import Runner, TensorSpec
from ofb_deploy.engines.config import DEFAULT_BATCHES
from ofb_deploy.engines.loaders import OrtSessionFromOnnx, batch_profile
from ofb_deploy.engines.sidecar import read_sidecar
from ofb_deploy.errors import ConfigError
from ofb_deploy.onnxtools.export import check_onnx

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}


def ort_session_for(
    path: Path,
    provider: str,
    threads: int | None = None,
    precision: str = "fp32",
) -> OrtSessionFromOnnx:
    """The session loader for an ONNX file or an ORT engine that ``build`` wrote.

    For the TensorRT EP an engine brings its build's profile shapes, precision and engine cache (sidecar), so the
    session loads the TensorRT engines built then; a bare ONNX gets a profile over batches 1..32 so that batches
    inside it share one TensorRT engine (without a cache: nothing is written next to a file we did not build).

    Args:
        path: ``.onnx`` or ``.engine``.
        provider: ``cpu``, ``cuda`` or ``trt``.
        threads: intra-op threads.
        precision: the TensorRT EP's fp16 / int8 flags for a bare ONNX.
    """
    if provider != "trt":
        return OrtSessionFromOnnx(path, provider=provider, threads=threads)

    if path.suffix == ".engine" and sidecar_path(path).is_file():
        doc = read_sidecar(path)
        options = {"precision": doc["precision"], "profile": doc["profile"], "trt_cache_dir": ort_trt_cache_dir(path)}
        return OrtSessionFromOnnx(path, "trt", threads, **options)

    profile = batch_profile(check_onnx(path, require_layernorm=False)["inputs"], DEFAULT_BATCHES)
    return OrtSessionFromOnnx(path, "trt", threads, precision=precision, profile=profile)


class OrtRunner(Runner):
    """ONNX Runtime inference.

    Args:
        session: an ``InferenceSession``, an ONNX path, or a loader returning a session.
        provider: ``cpu``, ``cuda`` or ``trt`` when ``session`` is a path (ignored otherwise).
        threads: intra-op threads when ``session`` is a path (``None``: ORT's default).
        precision: label recorded by ``describe()`` (``fp32``, ``fp16``, ``int8``).
        name: label for reports.
    """

    backend = "ort"

    def __init__(
        self,
        session: Any,
        provider: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
        name: str | None = None,
    ) -> None:
        self.backend = f"ort-{provider}"
        super().__init__(name)
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        if isinstance(session, str | Path):
            session = ort_session_for(Path(session), provider, threads, precision)
        self._source = session
        self.provider = provider
        self.threads = threads
        self.precision = precision
        self.session: Any = None

    def _activate(self) -> None:
        src = self._source
        self.session = src() if isinstance(src, Callable) and not hasattr(src, "run") else src

    def _deactivate(self) -> None:
        self.session = None

    def _input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(i.name, tuple(i.shape), _ORT_DTYPES.get(i.type, i.type)) for i in self.session.get_inputs()]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feed.items()}
        return dict(zip(names, self.session.run(names, feed), strict=True))

    def _bind(self, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feed.items()}
        if self.provider == "cpu":
            return feed
        import onnxruntime as ort

        binding = self.session.io_binding()
        for key, value in feed.items():
            binding.bind_ortvalue_input(key, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        for out in self.session.get_outputs():
            binding.bind_output(out.name, "cuda")
        return {"__binding__": binding}

    def _run_bound(self, bound: dict[str, Any]) -> None:
        binding = bound.get("__binding__")
        if binding is None:
            self.session.run(None, bound)
        else:
            # NOTE: run_with_iobinding synchronises the CUDA stream before returning, so no extra sync is needed
            self.session.run_with_iobinding(binding)

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        info = {**super().describe(), "library": "onnxruntime", "version": ort.__version__}
        # NOTE: threads None means ORT's default (one per physical core); cpu_count says what that could be
        info |= {"provider": self.provider, "precision": self.precision, "threads": self.threads}
        info["cpu_count"] = os.cpu_count()
        if self.session is not None:
            info["providers"] = list(self.session.get_providers())
        src = self._source
        if isinstance(src, OrtSessionFromOnnx):
            info["model"] = str(src.path)
            if src.provider == "trt":
                info["provider_options"] = src.trt_options()
        return info
