"""Paired statistics of a comparison: per seed, OFB minus a baseline, with the mean and its standard error.

Two methods run at the same seed share the seed's data order and held-out images, so their difference at that
seed carries less noise than either top-1; the verdicts of ``compare`` and the Pareto study use these paired
differences, not the difference of the means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any


def paired_differences(ofb: Mapping[str, float], other: Mapping[str, float]) -> dict[str, Any]:
    """OFB minus ``other`` at every seed both have: the differences, their mean and standard error.

    Args:
        ofb: top-1 per seed (seed as text, as in the result files).
        other: the baseline's top-1 per seed.

    Returns:
        ``{"seeds": {seed: diff}, "n", "mean", "se", "wins"}``; ``se`` is ``None`` with fewer than two seeds.
    """
    seeds = sorted(set(ofb) & set(other), key=int)
    diffs = {s: round(ofb[s] - other[s], 4) for s in seeds}
    values = list(diffs.values())
    mean = statistics.fmean(values) if values else None
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) >= 2 else None
    return {
        "seeds": diffs,
        "n": len(values),
        "mean": None if mean is None else round(mean, 4),
        "se": None if se is None else round(se, 4),
        "wins": sum(v > 0 for v in values),
    }
