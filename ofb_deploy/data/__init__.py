"""Data: Fashion-MNIST and ImageFolder sets fitted to a model, seeded splits, loaders and numpy readers."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ArrayReader": "readers",
        "CalibrationReader": "readers",
        "DataConfig": "config",
        "DataSplits": "datasets",
        "DatasetInfo": "info",
        "Feed": "readers",
        "as_config": "info",
        "build_loader": "loader",
        "build_splits": "datasets",
        "dataset_info": "info",
        "make_reader": "loader",
        "model_data": "resolve",
        "record_run_data": "resolve",
        "run_data": "resolve",
        "seeded_subset": "datasets",
        "set_epoch": "loader",
    },
)
