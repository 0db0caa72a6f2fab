"""Pretrained weights shipped inside the package, the way timm names pretrained tags (``model.tag``).

``ofb_deploy/pretrained/<model>.<tag>/`` is an ordinary model folder (``artifacts.model_json`` and
``artifacts.model_weights``) whose JSON also records the recipe, the data and the per-epoch top-1 curve.
``create_model(name, pretrained=True)`` loads the shipped folder of ``name`` when there is one (no network), else
timm's weights.
``make pretrained`` retrains and republishes it with ``python -m ofb_deploy.models.pretrained SRC TAG``.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from ofb_deploy.artifacts import model_json, model_weights
from ofb_deploy.errors import ArtifactError
from ofb_deploy.models.checkpoint import read_model_dir_spec
from ofb_deploy.utils.io import atomic_path, read_json

PACKAGE_DIR = "pretrained"
PRETRAINED = "pretrained"  # a checkpoint named so (``checkpoint: pretrained``): the model's pretrained weights


def pretrained_root() -> Path:
    """The package folder of shipped weights."""
    return Path(str(resources.files("ofb_deploy").joinpath(PACKAGE_DIR)))


def shipped_tags(model_name: str) -> list[str]:
    """Tags of the shipped weights of ``model_name`` (``["fmnist"]`` for ``vit_fmnist_tiny``), sorted."""
    root = pretrained_root()
    if not root.is_dir():
        return []
    prefix = f"{model_name}."
    return sorted(p.name[len(prefix) :] for p in root.iterdir() if p.name.startswith(prefix) and p.is_dir())


def pretrained_dir(model_name: str) -> Path | None:
    """The shipped model folder of ``model_name`` (``name`` or ``name.tag``), or ``None`` when none ships."""
    root = pretrained_root()
    if "." in model_name:
        folder = root / model_name
        return folder if model_json(folder).is_file() else None
    tags = shipped_tags(model_name)
    return root / f"{model_name}.{tags[0]}" if tags else None


def publish(src: str | Path, tag_name: str) -> Path:
    """Copy a trained model folder's JSON and weights into the package as ``<model>.<tag>`` (atomically).

    Args:
        src: a model folder written by ``ofb-deploy train`` (its resume state is left behind).
        tag_name: ``model.tag``, e.g. ``vit_fmnist_tiny.fmnist``.
    """
    src = Path(src)
    spec = read_model_dir_spec(src)
    model, _, tag = tag_name.partition(".")
    if model != spec.base_model or not tag:
        raise ArtifactError(f"publish {src}: name {tag_name!r} must be '{spec.base_model}.TAG'")
    if "history" not in read_json(model_json(src), "model config"):
        raise ArtifactError(
            f"publish {src}: {model_json(src)} has no training history (train it with ofb-deploy train)"
        )
    out = pretrained_root() / tag_name
    for file in (model_weights, model_json):  # the JSON last: pretrained_dir looks for it
        with atomic_path(file(out)) as tmp:
            shutil.copyfile(file(src), tmp)
    return out


if __name__ == "__main__":  # `make pretrained`: python -m ofb_deploy.models.pretrained SRC MODEL.TAG
    if len(sys.argv) != 3:
        sys.exit("usage: python -m ofb_deploy.models.pretrained TRAINED_DIR MODEL.TAG")
    print(f"published {publish(sys.argv[1], sys.argv[2])}")
