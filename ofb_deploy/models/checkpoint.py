"""Weights on disk: state-dict checkpoints and model folders (JSON config plus safetensors).

A model folder holds ``<stem>.json`` (``{"arch": ArchSpec, ...metadata}``) and ``<stem>.safetensors``, the
timm ``save_for_hf`` idea. Nothing here pickles a module; ``.pth`` files load with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ofb_deploy.errors import ArtifactError, ModelError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.utils.io import atomic_write_json, atomic_write_with, read_json

MODEL_STEMS = ("model", "subnet")  # the names a model folder may use, searched in this order


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``.pth``/``.pt`` file (weights only).

    Args:
        path: the file; a ``.pth`` holding ``{"model": ...}`` or ``{"state_dict": ...}`` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and torch raise several types for one cause: a bad file
        raise ModelError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    for key in ("model", "state_dict", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"checkpoint {path} does not hold a state dict of tensors")
    return obj


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a checkpoint into ``model``, failing with one line on any missing, extra or mis-shaped tensor."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelError(
            f"checkpoint {path} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ModelError(
                f"checkpoint {path}: {key} has shape {tuple(value.shape)}, model needs {tuple(own[key].shape)}"
            )
    model.load_state_dict(state)


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write tensors as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    return atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp)))


def save_model_dir(
    model: nn.Module,
    out_dir: str | Path,
    stem: str = "model",
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` as ``<stem>.json`` plus ``<stem>.safetensors`` in ``out_dir``.

    Args:
        model: the model; its ``spec`` is stored under ``"arch"``.
        out_dir: the folder.
        stem: file stem (``model`` or ``subnet``).
        meta: extra JSON metadata (metrics, data, FLOPs ...).
    """
    from ofb_deploy.models.flops import count_macs, count_params

    out_dir = Path(out_dir)
    save_state_dict(model.state_dict(), out_dir / f"{stem}.safetensors")
    doc = {
        "name": model.spec.base_model,
        "arch": model.spec.to_dict(),
        "macs": count_macs(model.spec).total,
        "params": count_params(model.spec),
        **(meta or {}),
    }
    atomic_write_json(out_dir / f"{stem}.json", doc)
    return out_dir


def _find_stem(folder: Path) -> str:
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    for stem in MODEL_STEMS:
        if (folder / f"{stem}.json").is_file():
            return stem
    raise ModelError(f"{folder} holds no model.json or subnet.json")


def read_model_dir_spec(folder: str | Path) -> ArchSpec:
    """The ``ArchSpec`` stored in a model folder."""
    folder = Path(folder)
    path = folder / f"{_find_stem(folder)}.json"
    doc = read_json(path, "model config")
    if not isinstance(doc, dict) or "arch" not in doc:
        raise ArtifactError(f"{path} has no 'arch' entry")
    return ArchSpec.from_dict(doc["arch"], source=str(path))


def load_model_dir(folder: str | Path) -> nn.Module:
    """Rebuild a model saved by ``save_model_dir``; a shape mismatch fails with one line."""
    from ofb_deploy.models.registry import build_model

    folder = Path(folder)
    stem = _find_stem(folder)
    model = build_model(read_model_dir_spec(folder))
    load_checkpoint(model, folder / f"{stem}.safetensors")
    return model
