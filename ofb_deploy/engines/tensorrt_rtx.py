"""TensorRT-RTX (module ``tensorrt_rtx``): the same builder and runner as ``tensorrt.py``, strongly typed.

TensorRT-RTX installs without a GPU and builds engines on the CPU for named compute capabilities ("CPU-only
AOT"; ``TrtBuildConfig.compute_capabilities``, SM89 by default when no GPU is present). Running an engine
needs an RTX-class GPU: without one ``activate()`` raises ``BackendUnavailableError`` with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ofb_deploy.engines.tensorrt import TrtBuildConfig, TrtRunner, build_serialized_engine, import_trt

LIBRARY = "tensorrt_rtx"


class RtxRunner(TrtRunner):
    """``TrtRunner`` on ``tensorrt_rtx``.

    Args:
        engine: serialized engine bytes or a loader returning them.
        precision: label for ``describe()``.
        name: label for reports.
    """

    def __init__(self, engine: Any, precision: str = "fp32", name: str | None = None) -> None:
        super().__init__(engine, library=LIBRARY, precision=precision, name=name)


def build_rtx_engine(onnx_path: Path, config: TrtBuildConfig, info: dict[str, Any] | None = None) -> bytes:
    """Build a serialized TensorRT-RTX engine (on the CPU when there is no GPU).

    Args:
        onnx_path: fp32, float16 or QDQ ONNX (the precision is the ONNX's: RTX networks are strongly typed).
        config: build options (profile, workspace, optimisation level, compute capabilities).
        info: filled with the profile, I/O and targets for the sidecar.
    """
    return build_serialized_engine(import_trt(LIBRARY), Path(onnx_path), config, info=info)
