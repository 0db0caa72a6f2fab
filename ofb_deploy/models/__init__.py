"""Models: the arch spec, the per-block-width ViT and Swin, the registry, checkpoints and the FLOPs counter."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ArchSpec": "arch_spec",
        "MacsReport": "flops",
        "OfbSwin": "swin",
        "OfbViT": "vit",
        "SpaceConfig": "space",
        "build_model": "registry",
        "count_macs": "flops",
        "count_params": "flops",
        "create_model": "registry",
        "get_arch_spec": "registry",
        "list_models": "registry",
        "parse_flops_target": "space",
        "load_checkpoint": "checkpoint",
        "load_model_dir": "checkpoint",
        "read_state_dict": "checkpoint",
        "register_model": "registry",
        "save_model_dir": "checkpoint",
    },
)
