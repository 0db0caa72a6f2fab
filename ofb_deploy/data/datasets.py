"""Data sets and deterministic splits: Fashion-MNIST or an ImageFolder tree, fitted to a model's input.

``build_splits(data, spec)`` gives the train, validation and calibration sets every stage uses. Fashion-MNIST's
validation set is its 10k test set; an ImageFolder tree needs ``train/`` and ``val/`` (the ImageNet layout) and
uses timm's ``create_transform`` for the model's size and mean/std. The calibration set is a seeded subset of
the training images without augmentation (calibrating on augmented images would skew activation ranges).
Caps (``train_size``, ``val_size``) are seeded subsets too, so every quick run sees the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ofb_deploy.data import fmnist
from ofb_deploy.data.config import DataConfig
from ofb_deploy.data.folder import folder_sets
from ofb_deploy.data.info import DatasetInfo, as_config, dataset_info, image_folder_dir
from ofb_deploy.data.transforms import adapt_batch
from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec


@dataclass
class DataSplits:
    """Train, validation and calibration sets, each yielding ``(normalised CHW float tensor, int label)``."""

    train: Dataset
    val: Dataset
    calib: Dataset
    num_classes: int
    info: DatasetInfo


class AdaptedImages(Dataset):
    """In-memory uint8 images fitted to a model input, transformed a whole batch at a time.

    Args:
        images: ``(N, H, W)`` or ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` int64.
        spec: the model's arch spec.
        augment: random shift and flip (training).
        fit: ``auto``, ``pad`` or ``resize``.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, spec: ArchSpec, augment: bool = False, fit: str = "auto"
    ) -> None:
        self.images, self.labels, self.spec, self.augment, self.fit = images, labels, spec, augment, fit

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = adapt_batch(self.images[index : index + 1], self.spec, fit=self.fit, augment=self.augment)
        return x[0], int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        # NOTE: DataLoader calls this (torch >= 2.1) instead of one __getitem__ per image: one vectorised transform.
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = adapt_batch(self.images[idx], self.spec, fit=self.fit, augment=self.augment)
        return list(zip(x.unbind(0), self.labels[idx].tolist(), strict=True))


def seeded_subset(dataset: Dataset, size: int | None, seed: int, salt: int = 0) -> Dataset:
    """A reproducible random subset of ``size`` items (the whole set when ``size`` is None or too big)."""
    n = len(dataset)  # type: ignore[arg-type]
    if size is None or size >= n:
        return dataset
    gen = torch.Generator().manual_seed(seed * 1000003 + salt)
    return Subset(dataset, torch.randperm(n, generator=gen)[:size].sort().values.tolist())


def _fmnist_splits(cfg: DataConfig, spec: ArchSpec, train_augment: bool) -> DataSplits:
    train_x, train_y = fmnist.load_fmnist("train", cfg.root)
    test_x, test_y = fmnist.load_fmnist("test", cfg.root)
    train = AdaptedImages(train_x, train_y, spec, augment=train_augment, fit=cfg.fit)
    plain_train = AdaptedImages(train_x, train_y, spec, augment=False, fit=cfg.fit)
    val = AdaptedImages(test_x, test_y, spec, augment=False, fit=cfg.fit)
    info = dataset_info(cfg)
    return _seeded_splits(cfg, train, plain_train, val, info)


def _seeded_splits(cfg: DataConfig, train: Any, plain_train: Any, val: Any, info: DatasetInfo) -> DataSplits:
    # NOTE: distinct salts keep the train, val and calibration selections independent for one seed
    return DataSplits(
        train=seeded_subset(train, cfg.train_size, cfg.seed, salt=1),
        val=seeded_subset(val, cfg.val_size, cfg.seed, salt=2),
        calib=seeded_subset(plain_train, cfg.calib_size, cfg.seed, salt=3),
        num_classes=info.num_classes,
        info=info,
    )


def build_splits(data: DataConfig | str, spec: ArchSpec, *, train_augment: bool = True) -> DataSplits:
    """Train / val / calibration sets fitted to ``spec`` (size, channels, mean/std).

    Args:
        data: a ``DataConfig`` or a name/path (``fmnist`` or an ImageFolder tree).
        spec: the model's arch spec.
        train_augment: augment the training set (off for search statistics or feature extraction).
    """
    cfg = as_config(data)
    if cfg.is_fmnist:
        splits = _fmnist_splits(cfg, spec, train_augment)
    else:
        info = dataset_info(cfg)
        train, plain_train, val = folder_sets(image_folder_dir(cfg), spec, train_augment, cfg.skip_bad_images)
        splits = _seeded_splits(cfg, train, plain_train, val, info)
    if splits.num_classes > spec.num_classes:
        raise ConfigError(f"data set has {splits.num_classes} classes but the model only {spec.num_classes} outputs")
    return splits
