"""What a data set is, read without torch and without decoding pixels: classes, channels, native size.

``dataset_info`` is the first thing every stage asks, and the pipeline asks it before any work: for an ImageFolder
tree it also verifies every image file once (``folder.scan``), so a zero-byte or corrupt file fails with one
line before a model is built, and a command fails on bad data in about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofb_deploy.data import fmnist
from ofb_deploy.data.config import DataConfig
from ofb_deploy.data.folder import scan
from ofb_deploy.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set before building it."""

    name: str
    num_classes: int
    in_chans: int
    native_size: int | None  # None when images vary in size (ImageFolder)
    classes: tuple[str, ...] = ()


def as_config(data: DataConfig | dict[str, Any] | str) -> DataConfig:
    """A ``DataConfig`` from itself, its mapping, or a name/path string."""
    if isinstance(data, DataConfig):
        return data
    return DataConfig.from_dict(data) if isinstance(data, dict) else DataConfig(name=str(data))


def image_folder_dir(cfg: DataConfig) -> Path:
    """The ImageFolder tree ``cfg`` names, checked to hold ``train/`` and ``val/``."""
    root = Path(cfg.name).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (use 'fmnist' or an ImageFolder tree with train/ and val/)")
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise DataError(f"data folder {root} has no {sub}/ subfolder (ImageFolder layout: train/ and val/)")
    return root


def dataset_info(data: DataConfig | str) -> DatasetInfo:
    """Classes, channels and native size of a data set; an ImageFolder tree's images are verified (once).

    Args:
        data: a ``DataConfig`` or a name/path.
    """
    cfg = as_config(data)
    if cfg.is_fmnist:
        if cfg.root is not None:  # a root given by hand must hold the files; the default may still download
            fmnist.find_root(cfg.root, download=False)
        return DatasetInfo("fmnist", len(fmnist.CLASSES), 1, fmnist.NATIVE_SIZE, fmnist.CLASSES)

    root = image_folder_dir(cfg)
    classes = tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    if not classes:
        raise DataError(f"{root / 'train'} holds no class folders")
    for split in ("train", "val"):
        scan(root / split, cfg.skip_bad_images)
    return DatasetInfo(str(root), len(classes), 3, None, classes)
