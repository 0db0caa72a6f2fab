"""Data: Fashion-MNIST and ImageFolder sets fitted to a model, seeded splits, loaders and numpy readers."""

from ofb_deploy.data.datasets import (
    DataConfig,
    DatasetInfo,
    DataSplits,
    as_config,
    build_splits,
    dataset_info,
    seeded_subset,
)
from ofb_deploy.data.loader import build_loader, make_reader, set_epoch
from ofb_deploy.data.readers import ArrayReader, CalibrationReader, Feed

__all__ = [
    "ArrayReader",
    "CalibrationReader",
    "DataConfig",
    "DataSplits",
    "DatasetInfo",
    "Feed",
    "as_config",
    "build_loader",
    "build_splits",
    "dataset_info",
    "make_reader",
    "seeded_subset",
    "set_epoch",
]
