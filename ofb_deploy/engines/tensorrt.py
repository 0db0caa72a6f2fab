"""``TrtRunner``: a serialized TensorRT 10 / 11 or TensorRT-RTX engine on the GPU (builder: ``trt_build.py``).

I/O is name-based (``num_io_tensors``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``), with
device memory and the stream from torch's CUDA API. Three rules keep a run correct on a real GPU:

* every ``set_input_shape`` / ``set_tensor_address`` result is checked, a batch outside the engine's profile is a
  one-line ``ConfigError`` before TensorRT sees it, and ``all_binding_shapes_specified`` must hold before a run;
* shapes and addresses are set again (when they differ) before *every* run, because ``infer()`` binds buffers
  of its own that are freed when it returns: a later ``run_bound()`` must not read them;
* inputs and outputs are allocated and copied on the engine's own stream (``torch.cuda.stream``), after it waits
  for torch's current stream, so the engine never reads an input that is still being copied.

None of this can run without a GPU; ``bind_tensors`` (the shape/address logic) is tested with a stand-in context.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.artifacts import runtime_cache_path, sidecar_path
from ofb_deploy.engines.base import Runner, TensorSpec
from ofb_deploy.engines.config import TrtBuildConfig
from ofb_deploy.engines.loaders import TrtEngineFromOnnx, TrtEngineFromPath
from ofb_deploy.engines.registry import backend_status, cuda_device_capability, cuda_device_name
from ofb_deploy.engines.sidecar import read_sidecar
from ofb_deploy.engines.tensorrt_rtx import (
    KERNEL_SPECIALIZATION,
    engine_target_reason,
    make_context,
    save_runtime_cache,
)
from ofb_deploy.errors import ArtifactError, BackendUnavailableError, ConfigError

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


def _check_batch(engine: Any, name: str, shape: tuple[int, ...]) -> None:
    lo, _opt, hi = (tuple(d) for d in engine.get_tensor_profile_shape(name, 0))
    if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
        raise ConfigError(
            f"input {name} shape {list(shape)} is outside the engine's profile {list(lo)}..{list(hi)}: "
            f"rebuild with --batch covering {shape[0]}"
        )


def bind_tensors(context: Any, engine: Any, shapes: dict[str, tuple[int, ...]], addresses: dict[str, int]) -> None:
    """Set input shapes and tensor addresses where they differ from the context's, checking every result.

    Args:
        context: the ``IExecutionContext``.
        engine: its ``ICudaEngine`` (for the profile's min/max shapes).
        shapes: input name to shape.
        addresses: every I/O tensor name to its device pointer.
    """
    for name, shape in shapes.items():
        if tuple(context.get_tensor_shape(name)) == tuple(shape):
            continue  # NOTE: the timed loop lands here; the context accepted this shape before
        _check_batch(engine, name, shape)
        if not context.set_input_shape(name, shape):
            raise ArtifactError(f"TensorRT refused shape {list(shape)} for input {name}")
    # NOTE: TensorRT 11 may drop this property; infer_shapes() then reports unresolved tensors the same way
    if not getattr(context, "all_binding_shapes_specified", True):
        raise ArtifactError(f"not every input shape is set (inputs set: {sorted(shapes)})")
    for name, ptr in addresses.items():
        if context.get_tensor_address(name) != ptr and not context.set_tensor_address(name, ptr):
            raise ArtifactError(f"TensorRT refused the device address of tensor {name}")


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
        self._runtime_cache: Any = None

    @classmethod
    def from_target(
        cls, target: Path, library: str = "tensorrt", precision: str = "fp32", name: str | None = None
    ) -> TrtRunner:
        """A runner for an ``.engine`` file, or one that builds ``target`` if it is an ``.onnx``."""
        if Path(target).suffix == ".onnx":
            loader: Any = TrtEngineFromOnnx(Path(target), TrtBuildConfig(precision=precision), library)
        else:
            loader = TrtEngineFromPath(Path(target))
        return cls(loader, library=library, precision=precision, name=name)

    def _engine_path(self) -> Path | None:
        return Path(self._source.path) if isinstance(self._source, TrtEngineFromPath) else None

    def _check_compatible(self) -> None:
        """Engines are tied to the library version, the GPU model (TensorRT) or the targets (RTX): check the sidecar."""
        path = self._engine_path()
        if path is None or not sidecar_path(path).is_file():
            return
        doc = read_sidecar(path)
        have = backend_status(self.backend).version
        if have and doc["library_version"] != have:
            raise ArtifactError(
                f"{path} was built with {doc['library']} {doc['library_version']}, this machine has {have}: "
                "rebuild it with `ofb-deploy build`"
            )
        gpu = cuda_device_name()
        targets = doc.get("compute_capabilities") or []
        if (self.library == "tensorrt" or "current" in targets) and gpu and doc["gpu"] and doc["gpu"] != gpu:
            raise ArtifactError(f"{path} was built for {doc['gpu']}, this GPU is {gpu}: rebuild it")
        if self.library == "tensorrt_rtx":
            why = engine_target_reason(targets, cuda_device_capability())
            if why:
                raise ArtifactError(f"{path} was {why}")

    def _activate(self) -> None:
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
        if self.library == "tensorrt_rtx":
            self._context, self._runtime_cache = make_context(trt, self._engine, self._runtime_cache_path())
        else:
            self._context = self._engine.create_execution_context()
        if self._context is None:
            raise ArtifactError(f"{self.library} could not create an execution context (out of GPU memory?)")
        self._stream = torch.cuda.Stream()

    def _runtime_cache_path(self) -> Path | None:
        path = self._engine_path()
        return runtime_cache_path(path) if path is not None else None

    def _deactivate(self) -> None:
        if self._runtime_cache is not None:
            save_runtime_cache(self._runtime_cache, self._runtime_cache_path())
        self._context = self._engine = self._runtime = self._stream = self._runtime_cache = None

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
        self._stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._stream):  # allocations and copies are ordered before the engine's run
            for name in self._tensors("INPUT"):
                array = np.ascontiguousarray(feed[name])
                bound[name] = torch.from_numpy(array).to("cuda", getattr(torch, self._dtype(name)))
            self._set_bindings(bound)
            for name in self._tensors("OUTPUT"):
                shape = tuple(self._context.get_tensor_shape(name))
                bound[name] = torch.empty(shape, dtype=getattr(torch, self._dtype(name)), device="cuda")
        return bound

    def _set_bindings(self, bound: dict[str, Any]) -> None:
        shapes = {name: tuple(bound[name].shape) for name in self._tensors("INPUT")}
        bind_tensors(self._context, self._engine, shapes, {name: t.data_ptr() for name, t in bound.items()})

    def _run_bound(self, bound: dict[str, Any]) -> None:
        self._set_bindings(bound)  # NOTE: infer() may have pointed the context at buffers it has since freed
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise ArtifactError(f"{self.library} execute_async_v3 failed")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        bound = self._bind(feed)
        self._run_bound(bound)
        with torch.cuda.stream(self._stream):
            outputs = {name: bound[name].float().cpu().numpy() for name in self._tensors("OUTPUT")}
        return outputs

    def synchronize(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "library": self.library, "version": backend_status(self.backend).version}
        # NOTE: a GPU engine has no CPU thread count; the key is there so every runner describes the same fields
        info |= {"precision": self.precision, "device_name": cuda_device_name(), "threads": None}
        if self._trt is not None:
            info["strongly_typed"] = is_strongly_typed(self._trt)
        if self.library == "tensorrt_rtx":
            info["kernel_specialization"] = KERNEL_SPECIALIZATION
        return info
