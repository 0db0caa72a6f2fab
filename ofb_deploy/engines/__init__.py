"""Inference backends behind one ``Runner`` interface, their loaders, the backend registry and engine builds.

``build_engine`` / ``build_run`` (``engines.build``) import export and calibration code, so they are loaded on
first use; importing this package stays cheap and never imports an optional backend library.
"""

from __future__ import annotations

from typing import Any

from ofb_deploy.engines.base import Runner, TensorSpec
from ofb_deploy.engines.registry import BACKENDS, PRECISIONS, BackendStatus, list_backends, make_runner

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "BackendStatus",
    "Runner",
    "TensorSpec",
    "build_engine",
    "build_run",
    "list_backends",
    "make_runner",
]


def __getattr__(name: str) -> Any:
    if name in ("build_engine", "build_run"):
        from ofb_deploy.engines import build

        return getattr(build, name)
    raise AttributeError(f"module 'ofb_deploy.engines' has no attribute {name!r}")
