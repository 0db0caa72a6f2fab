"""Fine-tuning of the sliced subnet with knowledge distillation from the dense model."""

from ofb_deploy.finetune.distill import DistillConfig, DistillLoss, kd_loss
from ofb_deploy.finetune.run import finetune_model, finetune_run, load_teacher

__all__ = ["DistillConfig", "DistillLoss", "finetune_model", "finetune_run", "kd_loss", "load_teacher"]
