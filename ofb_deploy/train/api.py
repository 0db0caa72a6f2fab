"""``train()``: build a model for a data set and train it densely (what ``ofb-deploy train`` runs)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ofb_deploy.data import DataConfig, as_config, build_splits, dataset_info
from ofb_deploy.models.registry import LOCAL_DIR_PREFIX, create_model
from ofb_deploy.train.config import TrainConfig
from ofb_deploy.train.loop import train_model
from ofb_deploy.utils.io import ensure_dir

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
        out_dir: output folder (also holds the resume state, ``artifacts.train_state``).
        config: hyper-parameters.
        checkpoint: initial weights (``.safetensors`` or ``.pth`` state dict).
        pretrained: start from timm's pretrained weights (needs the network).
        resume: continue a killed run from its last finished epoch.
        num_classes: classifier outputs (default: the data set's classes).
        in_chans: input channels (default: the data set's channels).
        img_size: input resolution (default: the model's; the data is padded or resized to it).
    """
    cfg = as_config(data)
    out_dir = ensure_dir(out_dir)
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
    return train_model(model, splits, out_dir, config, resume=resume, meta=meta)
