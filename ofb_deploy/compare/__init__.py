"""OFB against pruning baselines from the same dense checkpoint, at equal MACs and equal epochs.

``compare_run`` (``ofb-deploy compare``) holds every method at the OFB subnet's MACs; ``sweep_run``
(``ofb-deploy sweep``) repeats OFB and the magnitude baseline over several FLOPs targets.
"""

from ofb_deploy.compare.methods import METHODS, RunRecipe, read_recipe
from ofb_deploy.compare.run import CompareConfig, compare_run
from ofb_deploy.compare.sweep import sweep_run

__all__ = ["METHODS", "CompareConfig", "RunRecipe", "compare_run", "read_recipe", "sweep_run"]
