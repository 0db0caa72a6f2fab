"""The train stage: build a model for a data set and train it densely (``train``, ``train_run``), or take a given
dense checkpoint as the run's dense model (``import_dense``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ofb_deploy.artifacts import RunDir, model_json, model_weight_files, model_weights
from ofb_deploy.data import DataConfig, as_config, build_splits, dataset_info, record_run_data, run_data
from ofb_deploy.models.checkpoint import load_dense, save_model_dir
from ofb_deploy.models.pretrained import PRETRAINED, pretrained_dir
from ofb_deploy.models.registry import LOCAL_DIR_PREFIX, create_model
from ofb_deploy.train.config import TrainConfig
from ofb_deploy.train.loop import train_model
from ofb_deploy.utils.io import read_json, sha256_file, sha256_json

log = logging.getLogger(__name__)


def train(
    model_name: str,
    data: DataConfig | str,
    out_dir: Path,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    resume: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
) -> dict[str, Any]:
    """Train ``model_name`` on ``data`` and save it as the model folder ``out_dir``; return the metrics.

    Args:
        model_name: registry name (``list_models()``) or ``local-dir:PATH``.
        data: ``fmnist``, an ImageFolder path or a ``DataConfig``.
        out_dir: output folder (also holds the resume state, ``artifacts.train_state``); made on the first write.
        config: hyper-parameters.
        checkpoint: initial weights (``.safetensors`` or ``.pth`` state dict).
        pretrained: start from timm's pretrained weights (needs the network).
        resume: continue a killed run from its last finished epoch.
        num_classes: classifier outputs (default: the data set's classes).
        in_chans: input channels (default: the data set's channels).
        img_size: input resolution (default: the model's; the data is padded or resized to it).
    """
    cfg = as_config(data)
    info = dataset_info(cfg)
    if not model_name.startswith(LOCAL_DIR_PREFIX):  # a saved model keeps its own head and input
        num_classes = num_classes or info.num_classes
        in_chans = in_chans or info.in_chans
    torch.manual_seed(config.seed)  # same initial weights on every rank and every run
    model = create_model(
        model_name,
        num_classes=num_classes,
        in_chans=in_chans,
        img_size=img_size,
        checkpoint=checkpoint,
        pretrained=pretrained,
    )
    splits = build_splits(cfg, model.spec, train_augment=config.augment)
    log.info("training %s on %s: %d train / %d val images", model_name, info.name, len(splits.train), len(splits.val))
    meta = {"source_model": model_name, "data": cfg.to_dict(), "checkpoint": str(checkpoint) if checkpoint else None}
    return train_model(model, splits, Path(out_dir), config, resume=resume, meta=meta)


def train_run(
    run_dir: RunDir,
    model_name: str,
    config: TrainConfig,
    *,
    data: DataConfig | str | None = None,
    resume: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Train the dense model of a run into ``RunDir.dense_dir``; record the run's data; mark the stage done.

    Args:
        run_dir: the run (``RunDir.for_output`` for a new one).
        model_name: registry name or ``local-dir:PATH``.
        config: hyper-parameters.
        data: the data (default: the run's, ``data.run_data``); the first stage of a run records it.
        resume: continue a killed run from its last finished epoch.
        **options: ``checkpoint``, ``pretrained``, ``num_classes``, ``in_chans``, ``img_size`` of ``train``.
    """
    cfg = run_data(run_dir, data)
    metrics = train(model_name, cfg, run_dir.dense_dir, config, resume=resume, **options)
    record_run_data(run_dir, cfg)
    start = {k: str(v) for k, v in options.items() if v is not None and v is not False}
    inputs = {"model": model_name, "data": cfg.to_dict(), "config": config.to_dict(), "start": start}
    run_dir.mark_done("train", sha256_json(inputs), top1=metrics.get("top1"))
    return metrics


def import_dense(run_dir: RunDir, model_name: str, checkpoint: str | Path, data: DataConfig) -> dict[str, Any]:
    """A given dense checkpoint becomes ``RunDir.dense_dir``: a model folder, a weights file of ``model_name``, or
    ``pretrained`` (the model's pretrained weights: shipped in the package for the presets, else timm's).

    Args:
        run_dir: the run.
        model_name: registry name (for a folder it must name the model the folder holds).
        checkpoint: the folder, the weights file, or ``pretrained``.
        data: the run's data (classes and channels of the model).
    """
    info = dataset_info(data)
    meta: dict[str, Any] = {"source_model": model_name, "data": data.to_dict(), "checkpoint": str(checkpoint)}
    if checkpoint == PRETRAINED:
        model = create_model(model_name, num_classes=info.num_classes, in_chans=info.in_chans, pretrained=True)
        shipped = pretrained_dir(model_name)
        if shipped is not None:  # keep the shipped recipe, curve and top-1 next to the weights
            doc = read_json(model_json(shipped), "pretrained model")
            meta.update({k: doc[k] for k in ("config", "metrics", "history") if k in doc}, pretrained=shipped.name)
        digest = sha256_file(model_weights(shipped)) if shipped else f"timm:{model_name}"
    else:
        path = Path(checkpoint)
        model = load_dense(path, model_name, num_classes=info.num_classes, in_chans=info.in_chans)
        files = model_weight_files(path) if path.is_dir() else [path]
        digest = sha256_json({p.name: sha256_file(p) for p in files})
    save_model_dir(model, run_dir.stage_dir("train", create=True), meta=meta)
    record_run_data(run_dir, data)
    run_dir.mark_done("train", digest, checkpoint=str(checkpoint))
    return {"checkpoint": str(checkpoint)}
