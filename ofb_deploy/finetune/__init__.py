"""Fine-tuning of the sliced subnet with knowledge distillation from the dense model."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "NO_TEACHER": "config",
        "FinetuneConfig": "config",
        "finetune_model": "run",
        "finetune_run": "run",
        "load_teacher": "run",
    },
)
