"""OFB against pruning baselines from the same dense checkpoint, at equal MACs and equal epochs.

``compare_run`` (``ofb-deploy compare``) holds every method at the OFB subnet's MACs; ``sweep_run``
(``ofb-deploy sweep``) repeats OFB and the keep-embed uniform baseline over several FLOPs targets.
"""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "METHODS": "methods",
        "CompareConfig": "config",
        "RunRecipe": "recipe",
        "compare_run": "run",
        "read_recipe": "recipe",
        "sweep_run": "sweep",
    },
)
