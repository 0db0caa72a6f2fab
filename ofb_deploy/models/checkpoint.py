"""Weights on disk: state-dict checkpoints and model folders (JSON config plus safetensors).

A model folder holds a JSON config (``{"arch": ArchSpec, ...metadata}``) and safetensors weights under one stem
(``artifacts.model_json``, ``artifacts.model_weights``), the timm ``save_for_hf`` idea. Nothing here pickles a
module; ``.pth`` files load with ``weights_only=True``, so a pickle payload is refused, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ofb_deploy.artifacts import MODEL_STEMS, model_json, model_stem, model_weights
from ofb_deploy.errors import ArtifactError, ConfigError, ModelError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.utils.io import atomic_write_json, atomic_write_with, read_json

if TYPE_CHECKING:
    import torch
    from torch import nn

LOCAL_DIR_PREFIX = "local-dir:"  # ``create_model("local-dir:PATH")`` rebuilds the model folder PATH

# NOTE: torch is imported inside the functions that need it: reading a folder's spec (read_model_dir_spec,
# checkpoint_model) must not, so that a bad --model or checkpoint fails before torch loads.


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``.pth``/``.pt`` file (weights only).

    Args:
        path: the file; a ``.pth`` holding ``{"model": ...}`` or ``{"state_dict": ...}`` is unwrapped.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path} is a folder; a weights file (.safetensors or .pth) is needed here")
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
    load_state(model, read_state_dict(path), path)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``state`` (read from ``path``) into ``model``; one line on any missing, extra or mis-shaped tensor."""
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
    out_dir = Path(out_dir)
    save_state_dict(model.state_dict(), model_weights(out_dir, stem))
    doc = {
        "name": model.spec.base_model,
        "arch": model.spec.to_dict(),
        "macs": count_macs(model.spec).total,
        "params": count_params(model.spec),
        **(meta or {}),
    }
    atomic_write_json(model_json(out_dir, stem), doc)
    return out_dir


def _find_stem(folder: Path) -> str:
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    stem = model_stem(folder)
    if stem is None:
        names = " or ".join(model_json(folder, s).name for s in MODEL_STEMS)
        raise ModelError(f"{folder} holds no model ({names})")
    return stem


def read_model_dir_spec(folder: str | Path) -> ArchSpec:
    """The ``ArchSpec`` stored in a model folder."""
    folder = Path(folder)
    path = model_json(folder, _find_stem(folder))
    doc = read_json(path, "model config")
    if not isinstance(doc, dict) or "arch" not in doc:
        raise ArtifactError(f"{path} has no 'arch' entry")
    return ArchSpec.from_dict(doc["arch"], source=str(path))


def load_model_dir(folder: str | Path) -> nn.Module:
    """Rebuild a model saved by ``save_model_dir``; a shape mismatch fails with one line."""
    from ofb_deploy.models.registry import build_model  # lazy: imports torch, and this module

    folder = Path(folder)
    stem = _find_stem(folder)
    model = build_model(read_model_dir_spec(folder))
    load_checkpoint(model, model_weights(folder, stem))
    return model


def checkpoint_model(folder: str | Path, model: str | None = None) -> str:
    """The model a checkpoint folder holds: ``model`` when given and the same, else its recorded base model.

    Args:
        folder: a model folder.
        model: the registry name a user also gave (``--model``); naming another model is a ``ConfigError``.
    """
    held = read_model_dir_spec(folder).base_model
    if model is None or model.startswith(LOCAL_DIR_PREFIX):
        return model or held
    if model.partition(".")[0] != held:
        raise ConfigError(
            f"--model {model} conflicts with the checkpoint {folder}, which holds {held}; "
            "drop --model or give a checkpoint of that model"
        )
    return model


def load_dense(
    checkpoint: str | Path,
    model: str | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
) -> nn.Module:
    """A dense model (``OfbViT``, ``OfbSwin``) from a model folder, or a weights file of the registry model ``model``.

    Args:
        checkpoint: a model folder (``ofb-deploy train``), or a ``.safetensors``/``.pth`` state dict.
        model: registry name; needed for a weights file, and for a folder it must name the model it holds.
        num_classes: classifier outputs of a weights file's model (default: read from its head).
        in_chans: input channels of a weights file's model (default: read from its patch embedding).
    """
    from ofb_deploy.models.registry import create_model  # lazy: imports torch, and this module

    path = Path(checkpoint)
    if path.is_dir():
        checkpoint_model(path, model)
        return load_model_dir(path)
    if not path.exists():
        raise ModelError(f"dense checkpoint not found: {path} (train one with 'ofb-deploy train')")
    if model is None:
        raise ConfigError(f"{path} is a weights file: pass --model NAME so its architecture is known")
    state = read_state_dict(path)
    # a ViT's classifier is ``head``, a Swin's ``head.fc`` (timm's names)
    head = state.get("head.weight", state.get("head.fc.weight"))
    patch = state.get("patch_embed.proj.weight")
    classes = int(head.shape[0]) if head is not None and head.ndim == 2 else num_classes
    chans = int(patch.shape[1]) if patch is not None and patch.ndim == 4 else in_chans
    dense = create_model(model, num_classes=classes, in_chans=chans)
    load_state(dense, state, path)
    return dense
