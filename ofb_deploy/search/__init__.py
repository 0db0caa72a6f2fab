"""OFB search (Ye et al., CVPR 2024, arXiv 2403.15835): bi-mask importance and sparsity search of a ViT.

``run_search`` runs the stage on a run directory; ``load_searched_model`` rebuilds its result with the final
masks through the search's own masked forward.
"""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "OfbSupernet": "supernet",
        "SearchConfig": "config",
        "build_supernet": "build",
        "load_searched_model": "result",
        "run_search": "run",
    },
)
