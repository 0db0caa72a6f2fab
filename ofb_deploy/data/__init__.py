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
from ofb_deploy.data.resolve import model_data, record_run_data, run_data

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
    "model_data",
    "record_run_data",
    "run_data",
    "seeded_subset",
    "set_epoch",
]
