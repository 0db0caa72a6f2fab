"""Which data a run or a model folder uses: decided here and nowhere else.

A run has one data set. The run config records it (``RunDir.recorded_data``): ``ofb-deploy run`` writes it with
the whole config, and the first stage of a run made stage by stage (``train`` or ``search``) records what it used.
Every later stage reads it back through ``run_data``. A stage may still cap the images it uses (``train_size``,
``val_size``) or point at another copy of the same files (``root``), but naming another data set for a run that
already has one is an error: its models would not match its results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import RunDir, model_json, model_stem
from ofb_deploy.data.config import DataConfig
from ofb_deploy.data.info import as_config
from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.io import read_json


def _parse(doc: Any, source: Path) -> DataConfig:
    if isinstance(doc, str):
        return as_config(doc)
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: 'data' must be a mapping or a name, got {type(doc).__name__}")
    return DataConfig.from_dict(doc, section=f"{source}: data")


def same_data_set(a: DataConfig, b: DataConfig) -> bool:
    """True when both name the same images (Fashion-MNIST, or the same ImageFolder tree), whatever the caps."""
    if a.is_fmnist or b.is_fmnist:
        return a.is_fmnist and b.is_fmnist
    return Path(a.name).expanduser().resolve() == Path(b.name).expanduser().resolve()


def model_data(model_dir: str | Path) -> DataConfig:
    """The data a model folder records in its JSON (``data``), else Fashion-MNIST.

    Args:
        model_dir: a model folder (``RunDir.dense_dir``, or one from anywhere).
    """
    stem = model_stem(model_dir)
    if stem is None:
        return DataConfig()
    path = model_json(model_dir, stem)
    doc = read_json(path, "model config")
    found = doc.get("data") if isinstance(doc, dict) else None
    return DataConfig() if found is None else _parse(found, path)


def run_data(run_dir: RunDir, given: DataConfig | str | None = None) -> DataConfig:
    """The data of a run: ``given`` or the recorded choice (they must name the same data set), else the data the
    run's dense model records, else Fashion-MNIST.

    Args:
        run_dir: the run.
        given: the data a command was told to use; the fields it sets (caps, root ...) win over the recorded ones.
    """
    recorded = run_dir.recorded_data()
    chosen = None if given is None else as_config(given)
    if recorded is not None:
        cfg = _parse(recorded, run_dir.config_path)
        if chosen is None:
            return cfg
        if not same_data_set(chosen, cfg):
            raise ConfigError(
                f"data {chosen.name!r} conflicts with the run's data {cfg.name!r} ({run_dir.config_path}); "
                "drop --data or use a new run directory"
            )
        return cfg.replace(**{k: getattr(chosen, k) for k in chosen.model_fields_set})
    if chosen is not None:
        return chosen
    return model_data(run_dir.dense_dir)


def record_run_data(run_dir: RunDir, data: DataConfig) -> None:
    """Record ``data`` as the run's data unless the run already records one (the first stage decides)."""
    if run_dir.recorded_data() is None:
        run_dir.record_data(data.to_dict())
