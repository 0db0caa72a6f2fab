"""Atomic file writes and hashing: the only way ofb-deploy writes an artifact.

Every artifact is written to a temporary file in the same folder and renamed into place, so a killed
process never leaves a half-written file behind (rename is atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ArtifactError, ConfigError


def ensure_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) or raise a one-line ``ArtifactError`` when it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create output directory {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK):
        raise ArtifactError(f"output directory {path} is not writable")
    return path


def check_writable(path: str | Path) -> Path:
    """Raise a one-line ``ArtifactError`` unless ``path`` is, or could be created as, a writable folder.

    Nothing is created: a command checks its output folder before any work and makes it on its first write.
    """
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ArtifactError(f"cannot create output directory {path}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ArtifactError(f"output directory {path} is not writable ({probe} denies writing)")
    return path


def check_writable_file(path: str | Path) -> Path:
    """Raise a one-line ``ArtifactError`` unless a file could be written at ``path`` (nothing is created)."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path} is a folder; give a file name")
    check_writable(path.parent)
    if path.exists() and not os.access(path, os.W_OK):
        raise ArtifactError(f"{path} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    Args:
        path: final destination.
    """
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result onto ``path`` (for libraries that write files)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read a JSON document, turning a missing or malformed file into a one-line error.

    Args:
        path: file to read.
        what: how the error message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"malformed {what} {path}: {exc.msg} at line {exc.lineno}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {what} {path}: {exc}") from exc


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Mapping[str, Any] | list | str | int | float | None) -> str:
    """Hex sha256 of a JSON value in canonical form (sorted keys), for config fingerprints."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
