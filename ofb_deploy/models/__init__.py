"""Models: the arch spec, the per-block-width ViT and Swin, the registry and the FLOPs counter."""

from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.checkpoint import load_checkpoint, load_model_dir, read_state_dict, save_model_dir
from ofb_deploy.models.flops import MacsReport, count_macs, count_params
from ofb_deploy.models.registry import build_model, create_model, get_arch_spec, list_models, register_model
from ofb_deploy.models.swin import OfbSwin
from ofb_deploy.models.vit import OfbViT

__all__ = [
    "ArchSpec",
    "MacsReport",
    "OfbSwin",
    "OfbViT",
    "build_model",
    "count_macs",
    "count_params",
    "create_model",
    "get_arch_spec",
    "list_models",
    "load_checkpoint",
    "load_model_dir",
    "read_state_dict",
    "register_model",
    "save_model_dir",
]
