"""Dense training and the loop fine-tuning reuses (AdamW, warm-up + cosine, label smoothing, resume, DDP)."""

from ofb_deploy.train.api import import_dense, train, train_run
from ofb_deploy.train.config import TrainConfig
from ofb_deploy.train.loop import LossFn, cosine_lr, evaluate, train_model

__all__ = ["LossFn", "TrainConfig", "cosine_lr", "evaluate", "import_dense", "train", "train_model", "train_run"]
