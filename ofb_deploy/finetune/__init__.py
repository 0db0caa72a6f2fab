"""Fine-tuning of the sliced subnet with knowledge distillation from the dense model."""

from ofb_deploy.finetune.distill import DistillConfig, DistillLoss, kd_loss
from ofb_deploy.finetune.run import finetune_run, load_teacher, resolve_data

__all__ = ["DistillConfig", "DistillLoss", "finetune_run", "kd_loss", "load_teacher", "resolve_data"]
