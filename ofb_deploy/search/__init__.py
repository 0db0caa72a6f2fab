"""OFB search (Ye et al., CVPR 2024, arXiv 2403.15835): bi-mask importance and sparsity search of a ViT.

``run_search`` runs the stage on a run directory; ``load_searched_model`` rebuilds its result with the final
masks through the search's own masked forward.
"""

from ofb_deploy.search.build import build_supernet
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.search.result import load_searched_model
from ofb_deploy.search.run import run_search
from ofb_deploy.search.space import SpaceConfig, parse_flops_target
from ofb_deploy.search.supernet import OfbSupernet

__all__ = [
    "OfbSupernet",
    "SearchConfig",
    "SpaceConfig",
    "build_supernet",
    "load_searched_model",
    "parse_flops_target",
    "run_search",
]
