"""Engine sidecars: ``<engine>.json`` next to every built engine file.

Engines are tied to the GPU model and the library version, so the sidecar records both, plus the
precision, the batch profile, input/output names and shapes, the sha256 of the ONNX it was built from and of
the engine itself. The sidecar's name, and those of the caches a backend keeps next to an engine, come from
``ofb_deploy.artifacts`` (``sidecar_path``, ``runtime_cache_path``, ``ort_trt_cache_dir``).
``check_sidecar`` refuses a sidecar that is incomplete or no longer matches its files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import sidecar_path
from ofb_deploy.errors import ArtifactError
from ofb_deploy.utils.io import atomic_write_json, read_json, sha256_file

SIDECAR_SCHEMA = 1
REQUIRED = (
    "backend",
    "library",
    "library_version",
    "gpu",
    "precision",
    "profile",
    "inputs",
    "outputs",
    "onnx",
    "onnx_sha256",
    "engine_sha256",
)


def write_sidecar(engine_path: Path, onnx_path: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write the sidecar of ``engine_path`` built from ``onnx_path``.

    Args:
        engine_path: the engine file (must exist: its sha256 is recorded).
        onnx_path: the ONNX it was built from.
        info: backend, library, library_version, gpu, precision, profile, inputs, outputs and any extras.
    """
    doc = {"schema_version": SIDECAR_SCHEMA, **info, "onnx": str(onnx_path), "onnx_sha256": sha256_file(onnx_path)}
    doc["engine_sha256"] = sha256_file(engine_path)
    doc["engine_bytes"] = Path(engine_path).stat().st_size
    doc["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    missing = [key for key in REQUIRED if key not in doc]
    if missing:
        raise ArtifactError(f"sidecar of {engine_path} lacks {missing}")
    atomic_write_json(sidecar_path(engine_path), doc)
    return doc


def read_sidecar(engine_path: Path) -> dict[str, Any]:
    """The sidecar of ``engine_path``; one-line error when missing or malformed."""
    doc = read_json(sidecar_path(engine_path), "engine sidecar")
    missing = [key for key in REQUIRED if key not in doc] if isinstance(doc, dict) else list(REQUIRED)
    if missing:
        raise ArtifactError(f"engine sidecar {sidecar_path(engine_path)} lacks {missing}")
    return doc


def check_sidecar(engine_path: Path, onnx_path: Path | None = None) -> dict[str, Any]:
    """Read the sidecar and verify the engine's and (optionally) the ONNX's sha256 still match.

    Args:
        engine_path: the engine file.
        onnx_path: the ONNX to check against (default: the one the sidecar names, if it still exists).
    """
    doc = read_sidecar(engine_path)
    if not Path(engine_path).is_file():
        raise ArtifactError(f"engine not found: {engine_path} (run `ofb-deploy build`)")
    if sha256_file(engine_path) != doc["engine_sha256"]:
        raise ArtifactError(f"{engine_path} changed since it was built (sha256 differs from its sidecar): rebuild it")
    onnx = Path(onnx_path) if onnx_path is not None else Path(doc["onnx"])
    if onnx.is_file() and sha256_file(onnx) != doc["onnx_sha256"]:
        raise ArtifactError(f"{engine_path} is stale: {onnx} changed since the build; run `ofb-deploy build` again")
    return doc
