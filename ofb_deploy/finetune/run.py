"""The finetune stage: train the sliced subnet with distillation from the dense model into the run's finetune folder.

Reads the subnet of ``RunDir.slice_dir`` (the student) and, by default, ``RunDir.dense_dir`` (the teacher); writes
a subnet model folder to ``RunDir.finetune_dir`` through ``train_model`` (AdamW, warm-up + cosine, a per-epoch
resume state, DDP under torchrun) with ``DistillLoss`` as its loss.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from ofb_deploy.artifacts import RunDir, model_json, model_weights, slice_record
from ofb_deploy.data import DataConfig, build_loader, build_splits, run_data
from ofb_deploy.errors import ConfigError, ModelError
from ofb_deploy.finetune.config import NO_TEACHER
from ofb_deploy.models.checkpoint import load_model_dir
from ofb_deploy.slicing.record import SliceRecord
from ofb_deploy.slicing.run import SUBNET_STEM, load_subnet
from ofb_deploy.train import TrainConfig, evaluate, train_model
from ofb_deploy.train.distill import DistillConfig, DistillLoss
from ofb_deploy.utils import dist
from ofb_deploy.utils.io import sha256_file, sha256_json

log = logging.getLogger(__name__)

TEACHER_TABLE_FLOATS = 2**26  # at most 256 MB of precomputed teacher logits (ImageNet-1k's would be 5 GB)


def load_teacher(run_dir: RunDir, teacher: str | Path | None, student: nn.Module) -> nn.Module | None:
    """The dense teacher (``None`` for ``"none"``); it must see the same inputs and predict the same classes.

    Args:
        run_dir: the run (default teacher: ``RUN/dense``).
        teacher: a model folder, ``"none"``, or ``None`` for ``RunDir.dense_dir``.
        student: the subnet (its input geometry and classes are the reference).
    """
    if teacher is not None and str(teacher).lower() == NO_TEACHER:
        return None
    folder = Path(teacher) if teacher is not None else run_dir.dense_dir
    model = load_model_dir(folder)
    a, b = model.spec, student.spec
    for key in ("img_size", "in_chans", "num_classes", "patch_size"):
        if getattr(a, key) != getattr(b, key):
            raise ModelError(f"teacher {folder} has {key} {getattr(a, key)}, the subnet {getattr(b, key)}")
    return model.eval()


def finetune_run(
    run_dir: RunDir,
    config: TrainConfig,
    *,
    teacher: str | Path | None = None,
    resume: bool = False,
    data: DataConfig | str | None = None,
    distill: DistillConfig | None = None,
) -> dict[str, Any]:
    """Fine-tune the run's sliced subnet with distillation into its finetune folder; return the metrics.

    Args:
        run_dir: the run (needs ``RunDir.slice_dir``; the default teacher is ``RunDir.dense_dir``).
        config: training hyper-parameters (fine-tuning usually wants a lower lr than dense training).
        teacher: dense model folder, ``"none"`` for plain cross-entropy, or ``None`` for ``RUN/dense``.
        resume: continue from the stage's resume state (``RunDir.state_file("finetune")``).
        data: data set (default: the run's, ``data.run_data``).
        distill: distillation weights and temperature.
    """
    slice_dir = run_dir.slice_dir
    run_dir.require(model_json(slice_dir, SUBNET_STEM), "run `ofb-deploy slice` first")
    student = load_subnet(slice_dir).train()
    teach = load_teacher(run_dir, teacher, student)
    distill = distill or DistillConfig(label_smoothing=config.label_smoothing)
    cfg = run_data(run_dir, data)
    splits = build_splits(cfg, student.spec, train_augment=config.augment)
    if splits.num_classes != student.spec.num_classes:
        raise ConfigError(f"data has {splits.num_classes} classes, the subnet {student.spec.num_classes}")
    out = run_dir.stage_dir("finetune", create=True)
    before = _evaluate(student, splits, config) if not (resume and run_dir.state_file("finetune").is_file()) else {}
    meta = {
        "source_model": str(slice_dir),
        "teacher": str(teacher or run_dir.dense_dir) if teach is not None else None,
        "data": cfg.to_dict(),
        "sliced_metrics": before or None,
    }
    metrics = finetune_model(student, splits, out, config, teacher=teach, distill=distill, resume=resume, meta=meta,
                             state_path=run_dir.state_file("finetune"))  # fmt: skip
    meta["distill"] = distill.to_dict() if teach is not None else None
    if dist.is_main():
        SliceRecord.load(slice_record(slice_dir)).save(slice_record(out))
        keys = ("teacher", "distill", "data")
        inputs = [sha256_file(model_weights(slice_dir, SUBNET_STEM)), config.to_dict(), [meta[k] for k in keys]]
        run_dir.mark_done("finetune", sha256_json(inputs), top1=metrics.get("top1"), sliced_top1=before.get("top1"))
    return {**metrics, "sliced_top1": before.get("top1")}


def finetune_model(
    student: nn.Module,
    splits: Any,
    out_dir: Path,
    config: TrainConfig,
    *,
    teacher: nn.Module | None = None,
    distill: DistillConfig | None = None,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    state_path: Path | None = None,
) -> dict[str, Any]:
    """The fine-tune recipe: train ``student`` with distillation from ``teacher`` (plain CE without one).

    Writes a subnet model folder to ``out_dir`` (resume state ``state_path``, default ``artifacts.train_state``)
    and returns the final metrics. The finetune stage, ``compare`` and ``sweep`` all fine-tune through here, so
    every method gets the same recipe.

    Args:
        student: the model to train.
        splits: the data.
        out_dir: output folder.
        config: training hyper-parameters.
        teacher: the dense model, or ``None`` for cross-entropy on the labels.
        distill: distillation weights (default: alpha 0.5, T 4, the config's label smoothing).
        resume: continue from the resume state when it exists.
        meta: extra metadata for the subnet's JSON.
        state_path: resume state file.
    """
    distill = distill or DistillConfig(label_smoothing=config.label_smoothing)
    # without augmentation the teacher's logits are computed once per image (``DistillLoss``), if they fit in memory
    fits = len(splits.train) * splits.num_classes <= TEACHER_TABLE_FLOATS
    cached = splits.train if not config.augment and fits else None
    loss = DistillLoss(teacher, distill, cached) if teacher is not None else None
    meta = {**(meta or {}), "distill": distill.to_dict() if teacher is not None else None}
    return train_model(student, splits, Path(out_dir), config, resume=resume, loss_fn=loss, stem=SUBNET_STEM,
                       meta=meta, state_path=state_path, description="finetune")  # fmt: skip


def _evaluate(model: nn.Module, splits: Any, config: TrainConfig) -> dict[str, float]:
    """Top-1 of the sliced model before fine-tuning (what the slice alone keeps)."""
    device = dist.init_distributed()
    loader = build_loader(splits.val, config.batch_size * 2, train=False, workers=config.workers)
    return {k: round(v, 4) for k, v in evaluate(model.to(device), loader, device).items()}
