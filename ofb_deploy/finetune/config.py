"""``FinetuneConfig``: the fine-tune stage, a ``TrainConfig`` plus the teacher and its distillation weights.

The defaults are what the default run fine-tunes with (``configs/default.yaml``: 3 epochs at lr 1e-3 after a
0.1-epoch warm-up, distilled from the run's dense model), so a standalone ``ofb-deploy finetune`` and the
pipeline agree unless a preset says otherwise (``quick`` fine-tunes 1 epoch).
"""

from __future__ import annotations

from typing import ClassVar

from ofb_deploy.train.config import DistillConfig, TrainConfig
from ofb_deploy.utils.config import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt

NO_TEACHER = "none"


class FinetuneConfig(TrainConfig):
    """Settings of the fine-tune stage: every ``TrainConfig`` field, and

    Args:
        enabled: run the stage (off: the sliced model is the subnet).
        teacher: a dense model folder to distil from, ``none`` for plain cross-entropy, ``None``: the run's dense
            model.
        alpha: weight of the teacher's soft targets (the rest: the labels).
        temperature: distillation softmax temperature.
    """

    SECTION: ClassVar[str] = "finetune"

    epochs: PositiveInt = 3
    lr: PositiveFloat = 1e-3
    warmup_epochs: NonNegativeFloat = 0.1
    enabled: bool = True
    teacher: str | None = None
    alpha: Fraction = 0.5
    temperature: PositiveFloat = 4.0

    def train_config(self) -> TrainConfig:
        """The training hyper-parameters alone (what ``train_model`` takes and records)."""
        return TrainConfig.validated({k: getattr(self, k) for k in TrainConfig.model_fields})

    def distill_config(self) -> DistillConfig:
        """The distillation weights (label smoothing as in training)."""
        return DistillConfig(alpha=self.alpha, temperature=self.temperature, label_smoothing=self.label_smoothing)
