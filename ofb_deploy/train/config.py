"""Training hyper-parameters as data (DeiT recipe, Touvron et al. 2021, scaled down for small runs).

AdamW with decoupled weight decay, linear warm-up then cosine decay to ``min_lr`` (per step), label smoothing,
gradient clipping and mixed precision on CUDA. The defaults are the recipe of the converged ``vit_fmnist_tiny``
checkpoint the default run starts from (30 epochs at lr 2e-3 and batch 64: 89.8% top-1 on Fashion-MNIST);
batch 64 beats 128, and no augmentation beats shift/flip by 5-15 points in short runs (30k images, 1 epoch).
"""

from __future__ import annotations

from typing import ClassVar

from ofb_deploy.utils.config import (
    ConfigModel,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Smoothing,
)


class TrainConfig(ConfigModel):
    """Hyper-parameters of one training (or fine-tuning) run.

    Args:
        epochs: passes over the training set.
        batch_size: images per step on each process.
        lr: peak learning rate (after warm-up).
        weight_decay: AdamW weight decay (not applied to biases, norms, tokens, position embedding).
        warmup_epochs: linear warm-up length in epochs (may be fractional).
        label_smoothing: cross-entropy label smoothing.
        min_lr: learning rate at the end of the cosine.
        seed: seed of weights, shuffling and augmentation.
        workers: DataLoader worker processes (0: load in the main process, best for in-memory data on few cores).
        amp: mixed precision autocast (CUDA only; ignored on CPU).
        grad_clip: max gradient norm (``None``: no clipping).
        threads: torch intra-op threads on CPU (``None``: ``utils.threads.cpu_threads``).
        eval_every: evaluate every this many epochs (the last epoch is always evaluated).
        augment: augment training images (helps long runs; on Fashion-MNIST it costs ~10 points at 3 epochs).
    """

    SECTION: ClassVar[str] = "train"

    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3
    weight_decay: NonNegativeFloat = 0.05
    warmup_epochs: NonNegativeFloat = 0.3
    label_smoothing: Smoothing = 0.1
    min_lr: NonNegativeFloat = 1e-5
    seed: NonNegativeInt = 0
    workers: NonNegativeInt = 0
    amp: bool = True
    grad_clip: PositiveFloat | None = 1.0
    threads: PositiveInt | None = None
    eval_every: PositiveInt = 1
    augment: bool = False


class DistillConfig(ConfigModel):
    """Distillation weights.

    Args:
        alpha: weight of the soft (teacher) term; ``1 - alpha`` weighs the label cross-entropy.
        temperature: softmax temperature of both teacher and student in the soft term.
        label_smoothing: smoothing of the label cross-entropy.
    """

    SECTION: ClassVar[str] = "distill"

    alpha: Fraction = 0.5
    temperature: PositiveFloat = 4.0
    label_smoothing: Smoothing = 0.1
