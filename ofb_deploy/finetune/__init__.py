"""Fine-tuning of the sliced subnet with knowledge distillation from the dense model."""

from ofb_deploy.finetune.config import NO_TEACHER, FinetuneConfig
from ofb_deploy.finetune.distill import DistillConfig, DistillLoss, kd_loss
from ofb_deploy.finetune.run import finetune_model, finetune_run, load_teacher

__all__ = [
    "NO_TEACHER",
    "DistillConfig",
    "DistillLoss",
    "FinetuneConfig",
    "finetune_model",
    "finetune_run",
    "kd_loss",
    "load_teacher",
]
