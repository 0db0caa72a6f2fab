"""Backend registry: which backends this machine can build and run (and why not), and ``make_runner``.

Backends: ``torch`` (eager reference), ``ort-cpu``, ``ort-cuda``, ``ort-trt`` (ONNX Runtime providers),
``tensorrt`` (TensorRT 10 or 11, detected at run time) and ``tensorrt-rtx``. Probing imports optional libraries
inside ``try`` blocks only, so a missing one is a "no" with the line to install it, never an import error.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ofb_deploy.choices import Backend, Precision
from ofb_deploy.engines.base import Runner
from ofb_deploy.engines.loaders import ORT_PROVIDERS, ort_provider_available
from ofb_deploy.engines.ort import OrtRunner
from ofb_deploy.engines.torch_runner import TorchRunner
from ofb_deploy.errors import BackendUnavailableError, ConfigError

BACKENDS = Backend.values()  # the one list of backends is the Backend choice
PRECISIONS = Precision.values()
CPU_BACKENDS = (Backend.TORCH.value, Backend.ORT_CPU.value)  # backends whose latency the CPU thread count shapes
TRT_INSTALL = "pip install 'ofb-deploy[gpu]' (tensorrt, from NVIDIA's package index) on a machine with a CUDA GPU"
RTX_INSTALL = "pip install tensorrt-rtx"


@dataclass(frozen=True)
class BackendStatus:
    """What this machine can do with one backend.

    Args:
        name: backend name.
        can_build: an engine (for ORT: the optimised ONNX plus sidecar) can be built here.
        can_run: a runner can be activated here.
        reason: why not (empty when both are true), naming what to install.
        version: the backend library's version, when it imports.
        artifact: what ``build`` makes for this backend (``build --list`` shows it).
    """

    name: str
    can_build: bool
    can_run: bool
    reason: str = ""
    version: str = ""
    artifact: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cuda_device_name() -> str | None:
    """Name of CUDA device 0, or ``None`` without a usable CUDA GPU (probed through torch)."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken driver raises several error types; all mean "no GPU here"
        return None


def cuda_device_capability() -> tuple[int, int] | None:
    """Compute capability ``(major, minor)`` of CUDA device 0, or ``None`` without a usable GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability(0)
        return int(major), int(minor)
    except Exception:  # as in cuda_device_name
        return None


def probe_module(module: str) -> tuple[str | None, str]:
    """``(version, "")`` when ``module`` imports, else ``(None, why not)``; never raises.

    Args:
        module: an importable name (``onnxruntime``, ``tensorrt`` ...).
    """
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # missing package, missing shared library, or no driver: all mean unavailable
        first = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"{type(exc).__name__}: {first}"
    return str(getattr(mod, "__version__", "installed")), ""


def module_version(module: str) -> str | None:
    """The version of ``module``, or ``None`` when it does not import (see ``probe_module``)."""
    return probe_module(module)[0]


ORT_ARTIFACTS = {
    "ort-cpu": "ORT's optimised ONNX (for this CPU) + sidecar",
    "ort-cuda": "ORT's optimised ONNX for CUDA + sidecar, made where the CUDA provider runs",
    "ort-trt": "ONNX (basic ORT optimisations) + sidecar + TensorRT EP engine cache, made where the TensorRT EP runs",
}


def _ort_status(name: str) -> BackendStatus:
    provider = name.split("-", 1)[1]
    artifact = ORT_ARTIFACTS[name]
    version = module_version("onnxruntime") or ""
    if not version:
        return BackendStatus(name, False, False, "onnxruntime is not installed: pip install onnxruntime", "", artifact)
    if ort_provider_available(provider):
        return BackendStatus(name, True, True, "", version, artifact)
    wanted, install = ORT_PROVIDERS[provider]
    # NOTE: an ORT engine is an ONNX the provider optimised; without the provider there is nothing to make but a
    # copy of the exported ONNX, which would claim a build that never happened
    return BackendStatus(name, False, False, f"ONNX Runtime has no {wanted} here: {install}", version, artifact)


def _rtx_status(version: str) -> BackendStatus:
    # lazy: both modules import this one, a cycle at the top
    from ofb_deploy.engines.tensorrt import import_trt
    from ofb_deploy.engines.tensorrt_rtx import TURING, device_reason, library_targets

    trt = import_trt("tensorrt_rtx")
    targets = library_targets(trt)
    artifact = f"engine for {', '.join(targets)} (built on the CPU; fp32/int8 networks skip {TURING})"
    why = device_reason(trt, cuda_device_capability(), cuda_device_name())
    return BackendStatus("tensorrt-rtx", True, not why, why, version, artifact)


TRT_ARTIFACTS = {
    "tensorrt": "engine for one GPU model and TensorRT version (10: fp16/int8 builder flags; 11: float16/QDQ ONNX)",
    "tensorrt-rtx": "engine for the compute capabilities TensorRT-RTX lists, built on the CPU (no GPU needed)",
}


def _trt_status(name: str) -> BackendStatus:
    module, install = ("tensorrt_rtx", RTX_INSTALL) if name == "tensorrt-rtx" else ("tensorrt", TRT_INSTALL)
    version = module_version(module)
    if version is None:
        return BackendStatus(name, False, False, f"{module} is not installed: {install}", "", TRT_ARTIFACTS[name])
    if name == "tensorrt-rtx":
        return _rtx_status(version)
    kind = "weakly typed: fp16/int8 builder flags" if version.startswith("10.") else "strongly typed: float16/QDQ ONNX"
    artifact = f"engine for this GPU model and TensorRT {version} ({kind})"
    if cuda_device_name() is None:
        why = "TensorRT builds and runs engines on a CUDA GPU; none found"
        return BackendStatus(name, False, False, why, version, artifact)
    return BackendStatus(name, True, True, "", version, artifact)


@functools.cache
def backend_status(name: str) -> BackendStatus:
    """The ``BackendStatus`` of one backend (probed once per process)."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; backends: {', '.join(BACKENDS)}")
    if name == "torch":
        import torch

        device = "CPU and CUDA" if cuda_device_name() else "CPU"
        why = "" if device == "CPU and CUDA" else "runs on the CPU only (no CUDA GPU)"
        return BackendStatus(name, False, True, why, torch.__version__, "nothing: eager PyTorch is the reference")
    if name.startswith("ort-"):
        return _ort_status(name)
    return _trt_status(name)


def list_backends() -> list[BackendStatus]:
    """Every backend with whether it can build and run on this machine, and why not."""
    return [backend_status(name) for name in BACKENDS]


def require_backend(name: str, *, run: bool = False) -> BackendStatus:
    """Return the status or raise a one-line ``BackendUnavailableError`` saying what is missing.

    Args:
        name: backend name.
        run: require running too (not only building).
    """
    status = backend_status(name)
    if not status.can_build and not run and name != "torch":
        raise BackendUnavailableError(f"cannot build {name} here: {status.reason}")
    if run and not status.can_run:
        raise BackendUnavailableError(f"cannot run {name} here: {status.reason}")
    return status


def make_runner(
    backend: str,
    target: Any,
    precision: str = "fp32",
    threads: int | None = None,
    name: str | None = None,
    device: str = "cpu",
) -> Runner:
    """A runner for ``backend`` on ``target``; nothing loads before ``activate()``.

    Args:
        backend: one of ``BACKENDS``.
        target: ``torch``: a model folder or ``nn.Module``; ``ort-*``: an ONNX file (or the ``.engine`` that
            ``build`` wrote, which is an ONNX too); ``tensorrt*``: a serialized ``.engine`` or an ONNX to build.
        precision: ``fp32``, ``fp16`` or ``int8`` (for an ONNX target of ``tensorrt*``: what to build).
        threads: CPU threads (``torch`` and ``ort-cpu``).
        name: runner label (default: ``backend`` or ``backend:precision``).
        device: ``torch`` only: ``cpu`` or ``cuda``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; precisions: {', '.join(PRECISIONS)}")
    label = name or (backend if backend == "torch" else f"{backend}:{precision}")
    if backend == "torch":
        return TorchRunner(target, device=device, threads=threads, name=label)
    if backend.startswith("ort-"):
        return OrtRunner(
            Path(target), provider=backend.split("-", 1)[1], threads=threads, precision=precision, name=label
        )
    from ofb_deploy.engines.tensorrt import TrtRunner  # lazy: tensorrt.py imports this module

    library = "tensorrt_rtx" if backend == "tensorrt-rtx" else "tensorrt"
    return TrtRunner.from_target(Path(target), library=library, precision=precision, name=label)
