"""Knowledge distillation loss: soft targets from the dense teacher plus cross-entropy on the labels.

Hinton, Vinyals and Dean 2015 ("Distilling the Knowledge in a Neural Network", arXiv 1503.02531):

    L = (1 - alpha) * CE(student, y)  +  alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The ``T^2`` keeps the soft term's gradients the same size whatever the temperature. OFB (arXiv 2403.15835)
fine-tunes its subnets after the search; using the dense model as teacher is the DeiT recipe's soft variant.
The loss plugs into ``train_model`` through its ``loss_fn(logits, images, labels)`` hook, so the teacher runs
on the same (augmented) batch the student sees.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ofb_deploy.train.config import DistillConfig


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
    """``loss_fn`` for ``train_model``: the frozen teacher's logits on the batch, then ``kd_loss``.

    Without augmentation every epoch shows the teacher the same images, so with ``dataset`` (the training set, not
    augmented) the teacher runs once over it, in fixed chunks, and each batch looks its logits up by the bytes of
    its images: an epoch after the first costs no teacher pass, and a resumed run gets the very same logits.

    Args:
        teacher: the dense model (frozen, kept in eval mode, moved to the batch's device on first use).
        config: weights and temperature.
        dataset: the (unaugmented) training images to precompute the teacher's logits on; ``None``: run the
            teacher on every batch (needed with augmentation).
    """

    CHUNK = 256  # images per teacher pass while precomputing

    def __init__(self, teacher: nn.Module, config: DistillConfig, dataset: Any = None) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.config = config
        self.dataset = dataset
        self.table: dict[bytes, torch.Tensor] | None = None

    def _teacher(self, images: torch.Tensor) -> torch.Tensor:
        if next(self.teacher.parameters()).device != images.device:
            self.teacher.to(images.device)
        with torch.no_grad():
            return self.teacher(images)

    def _precompute(self, device: torch.device) -> dict[bytes, torch.Tensor]:
        from torch.utils.data import DataLoader

        table: dict[bytes, torch.Tensor] = {}
        for images, _ in DataLoader(self.dataset, batch_size=self.CHUNK, shuffle=False):
            logits = self._teacher(images.to(device)).float().cpu()
            table.update(zip(_keys(images), logits, strict=True))
        return table

    def __call__(self, logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.dataset is None:
            return kd_loss(logits, self._teacher(images), labels, self.config)
        if self.table is None:
            self.table = self._precompute(images.device)
        try:
            target = torch.stack([self.table[k] for k in _keys(images)]).to(images.device)
        except KeyError:  # an image outside the precomputed set (not expected without augmentation)
            target = self._teacher(images)
        return kd_loss(logits, target, labels, self.config)


def _keys(images: torch.Tensor) -> list[bytes]:
    """A digest of each image's bytes (the lookup key of precomputed teacher logits)."""
    flat = images.detach().float().cpu().contiguous()
    return [hashlib.blake2b(x.numpy().tobytes(), digest_size=16).digest() for x in flat]
