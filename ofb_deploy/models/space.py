"""The OFB search space: candidate widths per searchable unit, and the FLOPs target.

OFB (Ye et al., CVPR 2024, arXiv 2403.15835, sec. 3.1) searches three unit types of a ViT:

* the embedding width, one for the whole residual stream (a Swin: one per stage): 50%..100% of D;
* per block, attention heads x per-head q/k/v dim as ONE joint grid (one softmax over all pairs);
  we allow heads {1..H} (so DeiT-T's 3 heads work) and head dims in multiples of the alignment;
* per block, the MLP hidden width: 25%..100% of M in 1/8 steps.

Every width is a multiple of ``align`` (8 by default: TensorRT and tensor cores prefer it); the dense width is
always a candidate, so the search can keep a unit whole.
"""

from __future__ import annotations

import math
import random
import re
from typing import Annotated, ClassVar

from pydantic import Field

from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.flops import count_macs
from ofb_deploy.utils.config import ConfigModel, Float, PositiveInt

WidthFraction = Annotated[Float, Field(gt=0, le=1)]


class SpaceConfig(ConfigModel):
    """Candidate grid settings.

    Args:
        align: every candidate width (embed, head dim, MLP) is a multiple of this.
        embed_min: smallest embed width as a fraction of the dense one.
        mlp_min: smallest MLP width as a fraction of the dense one.
        mlp_steps: MLP candidates are ``k/mlp_steps`` of the dense width (then aligned).
    """

    SECTION: ClassVar[str] = "search"

    align: PositiveInt = 8
    embed_min: WidthFraction = 0.5
    mlp_min: WidthFraction = 0.03125
    mlp_steps: PositiveInt = 32


def _aligned_range(full: int, low: float, align: int) -> list[int]:
    """Multiples of ``align`` in ``[low, full]``, plus ``full`` itself."""
    first = max(align, math.ceil(low / align) * align)
    return sorted({*range(first, full + 1, align), full})


def embed_candidates(embed_dim: int, space: SpaceConfig) -> list[int]:
    """Embed widths, ascending (the last is the dense width)."""
    return _aligned_range(embed_dim, space.embed_min * embed_dim, space.align)


def mlp_candidates(mlp_hidden: int, space: SpaceConfig) -> list[int]:
    """MLP hidden widths ``k/steps * M`` from ``mlp_min``, rounded to the alignment, ascending."""
    sizes = set()
    for k in range(1, space.mlp_steps + 1):
        frac = k / space.mlp_steps
        if frac + 1e-9 < space.mlp_min:
            continue
        width = round(frac * mlp_hidden / space.align) * space.align
        sizes.add(min(mlp_hidden, max(space.align, width)))
    sizes.add(mlp_hidden)
    return sorted(sizes)


def attn_candidates(num_heads: int, head_dim: int, space: SpaceConfig) -> list[tuple[int, int]]:
    """The joint (heads, head dim) grid, ordered by width then heads; the last is the dense pair."""
    dims = _aligned_range(head_dim, space.align, space.align)
    grid = [(h, d) for h in range(1, num_heads + 1) for d in dims]
    return sorted(grid, key=lambda hd: (hd[0] * hd[1], hd[0]))


_TARGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([kmgt]?)\s*(?:macs?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def check_flops_target(target: str | float) -> str:
    """``target`` as the text ``parse_flops_target`` reads, or ``ValueError`` naming the two accepted forms.

    Args:
        target: a fraction of the dense MACs (``0.5``) or MACs with a unit (``1.2G``, ``800M``).
    """
    if isinstance(target, bool) or not isinstance(target, str | int | float):
        raise ValueError("use a fraction like 0.5 or MACs like 1.2G / 800M")
    match = _TARGET.match(str(target))
    if match is None:
        raise ValueError("use a fraction like 0.5 or MACs like 1.2G / 800M")
    value, unit = float(match.group(1)), match.group(2)
    if value <= 0:
        raise ValueError("a FLOPs target must be positive")
    if not unit and 1 < value < 1000:
        # NOTE: a bare 2.0 is almost surely a mistaken fraction, not a 2-MAC model
        raise ValueError("a fraction must be in (0, 1]; absolute MACs need a unit (1.2G)")
    return str(target).strip()


def parse_flops_target(target: str | float, dense_macs: int) -> int:
    """Turn a FLOPs target into MACs: a fraction of the dense model (``0.5``) or absolute (``1.2G``, ``800M``).

    Args:
        target: a number in (0, 1] (fraction), or a MAC count with an optional K/M/G/T suffix.
        dense_macs: MACs of the dense model per image.
    """
    try:
        match = _TARGET.match(check_flops_target(target))
    except ValueError as exc:
        raise ConfigError(f"FLOPs target {target!r}: {exc}") from None
    value, unit = float(match.group(1)), match.group(2).lower()
    macs = value * dense_macs if (not unit and value <= 1) else value * _UNITS[unit]
    if macs > dense_macs:
        raise ConfigError(
            f"FLOPs target {target!r} ({macs / 1e6:.2f} MMACs) exceeds the dense model's {dense_macs / 1e6:.2f} MMACs"
        )
    return int(round(macs))


_LATENCY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(ms|us|s|x)\s*$", re.IGNORECASE)
_TO_MS = {"ms": 1.0, "us": 1e-3, "s": 1e3}


def parse_latency(target: str | float) -> tuple[float, str]:
    """A latency budget: ``(ms, "ms")`` from ``1.5ms``, ``800us`` or ``0.002s``, or ``(share, "x")`` from ``0.6x``.

    ``0.6x`` means 60% of the dense model's latency on the table's backend and batch. A share survives the
    machine getting faster or slower between profiling and deployment (a shared CPU drifts by tens of percent
    over an hour), an absolute time does not. The unit is required.
    """
    match = _LATENCY.match(str(target))
    if match is None:
        raise ConfigError(
            f"bad latency target {target!r}: give a number and a unit, like 1.5ms or 800us, or a share of the "
            "dense latency like 0.6x"
        )
    value, unit = float(match.group(1)), match.group(2).lower()
    if value <= 0:
        raise ConfigError(f"latency target {target!r} must be positive")
    if unit == "x":
        if value > 1:
            raise ConfigError(f"latency target {target!r}: a share of the dense latency must be in (0, 1]")
        return value, "x"
    return value * _TO_MS[unit], "ms"


def random_subnet(spec: ArchSpec, space: SpaceConfig, rng: random.Random) -> ArchSpec:
    """A ViT subnet drawn uniformly from the space: embed width, each block's (heads, head dim) and MLP width.

    Args:
        spec: the dense ViT.
        space: the candidate grid.
        rng: the random source (seeded by the caller).
    """
    attn = [rng.choice(attn_candidates(h, d, space)) for h, d in zip(spec.num_heads, spec.head_dim, strict=True)]
    return spec.replace(
        embed_dim=rng.choice(embed_candidates(spec.embed_dim, space)),
        num_heads=tuple(h for h, _ in attn),
        head_dim=tuple(d for _, d in attn),
        mlp_hidden=tuple(rng.choice(mlp_candidates(m, space)) for m in spec.mlp_hidden),
    )


def smallest_spec(spec: ArchSpec, space: SpaceConfig) -> ArchSpec:
    """The narrowest subnet of the search space: every module (and every stage width) at its smallest candidate."""
    attn = [
        min(attn_candidates(h, d, space), key=lambda c: c[0] * c[1])
        for h, d in zip(spec.num_heads, spec.head_dim, strict=True)
    ]
    return spec.with_widths(
        stage_widths=tuple(min(embed_candidates(w, space)) for w in spec.stage_widths),
        num_heads=tuple(h for h, _ in attn),
        head_dim=tuple(d for _, d in attn),
        mlp_hidden=tuple(min(mlp_candidates(m, space)) for m in spec.mlp_hidden),
    )


def min_subnet_macs(spec: ArchSpec, space: SpaceConfig) -> int:
    """MACs of the smallest subnet the search space holds (every module at its narrowest candidate)."""
    return count_macs(smallest_spec(spec, space)).total


def resolve_flops_target(target: str | float, spec: ArchSpec, space: SpaceConfig) -> int:
    """``parse_flops_target`` plus a check that the search space can reach the target (fails before any work).

    Args:
        target: a fraction of the dense MACs or an absolute MAC count (see ``parse_flops_target``).
        spec: the dense model.
        space: the candidate widths.
    """
    macs = parse_flops_target(target, count_macs(spec).total)
    smallest = min_subnet_macs(spec, space)
    if macs < smallest:
        raise ConfigError(
            f"FLOPs target {macs / 1e6:.2f} MMACs is below the smallest subnet in the search space "
            f"({smallest / 1e6:.2f} MMACs)"
        )
    return macs
