"""Dense training and the loop fine-tuning reuses (AdamW, warm-up + cosine, label smoothing, resume, DDP)."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "DistillConfig": "config",
        "DistillLoss": "distill",
        "LossFn": "loop",
        "kd_loss": "distill",
        "TrainConfig": "config",
        "cosine_lr": "loop",
        "evaluate": "loop",
        "import_dense": "api",
        "train": "api",
        "train_model": "loop",
        "train_run": "api",
    },
)
