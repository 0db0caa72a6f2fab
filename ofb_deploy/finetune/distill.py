"""Knowledge distillation loss: soft targets from the dense teacher plus cross-entropy on the labels.

Hinton, Vinyals and Dean 2015 ("Distilling the Knowledge in a Neural Network", arXiv 1503.02531):

    L = (1 - alpha) * CE(student, y)  +  alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The ``T^2`` keeps the soft term's gradients the same size whatever the temperature. OFB (arXiv 2403.15835)
fine-tunes its subnets after the search; using the dense model as teacher is the DeiT recipe's soft variant.
The loss plugs into ``train_model`` through its ``loss_fn(logits, images, labels)`` hook, so the teacher runs
on the same (augmented) batch the student sees.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ofb_deploy.finetune.config import DistillConfig


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    config: DistillConfig,
) -> torch.Tensor:
    """The distillation loss of one batch (mean over the batch).

    Args:
        student: student logits ``(B, C)``.
        teacher: teacher logits ``(B, C)`` (no gradient).
        labels: class indices ``(B,)``.
        config: weights and temperature.
    """
    t = config.temperature
    hard = F.cross_entropy(student.float(), labels, label_smoothing=config.label_smoothing)
    soft = F.kl_div(
        F.log_softmax(student.float() / t, dim=-1),
        F.log_softmax(teacher.float() / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return (1.0 - config.alpha) * hard + config.alpha * t * t * soft


class DistillLoss:
    """``loss_fn`` for ``train_model``: runs the frozen teacher on the batch and returns ``kd_loss``.

    Args:
        teacher: the dense model (frozen, kept in eval mode, moved to the batch's device on first use).
        config: weights and temperature.
    """

    def __init__(self, teacher: nn.Module, config: DistillConfig) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.config = config

    def __call__(self, logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if next(self.teacher.parameters()).device != images.device:
            self.teacher.to(images.device)
        with torch.no_grad():
            target = self.teacher(images)
        return kd_loss(logits, target, labels, self.config)
