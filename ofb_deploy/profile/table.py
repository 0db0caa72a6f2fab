"""``LatencyTable``: measured latency of a model's parts over its search space, and predictions from it.

A table holds, for one model, backend, precision, batch and thread count, the median latency of each part
(``graphs.py``) at a grid of widths: the fixed part (stem and head) per embed width, an attention part per
(embed, heads, head dim) and an MLP part per (embed, hidden). Each part's time is stored net of the per-run
call overhead, which is counted once per model. Between grid points latency is interpolated linearly (bilinearly
in embed and width); the grid values are made non-decreasing along every width first (a cumulative maximum),
so a prediction never falls when a width grows. A final affine correction (``scale``, ``offset``), fitted on
whole models measured at profile time, absorbs what the parts miss (cache reuse between blocks, fusions across
part boundaries).

``expected_ms`` is the same prediction under the search's candidate probabilities: a torch expression that is
differentiable in alpha, as the expected MACs are.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PrivateAttr
from typing_extensions import TypedDict

from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.utils.results import ResultModel

SCHEMA_VERSION = 1


def _monotone(values: np.ndarray) -> np.ndarray:
    """Cumulative maximum along every axis: timing noise never makes a wider part look faster."""
    out = np.asarray(values, dtype=np.float64)
    for axis in range(out.ndim):
        out = np.maximum.accumulate(out, axis=axis)
    return out


def _interp1(points: list[int], x: float) -> tuple[int, int, float]:
    """Indices (i, j) around ``x`` in ascending ``points`` and the weight of j (clamped at the ends)."""
    if x <= points[0]:
        return 0, 0, 0.0
    if x >= points[-1]:
        last = len(points) - 1
        return last, last, 0.0
    j = bisect.bisect_left(points, x)
    i = j - 1
    return i, j, (x - points[i]) / (points[j] - points[i])


def _bilinear(rows: list[int], cols: list[int], grid: np.ndarray, r: float, c: float) -> float:
    i0, i1, wr = _interp1(rows, r)
    j0, j1, wc = _interp1(cols, c)
    top = (1 - wc) * grid[i0, j0] + wc * grid[i0, j1]
    bottom = (1 - wc) * grid[i1, j0] + wc * grid[i1, j1]
    return float((1 - wr) * top + wr * bottom)


class FitPoint(TypedDict):
    """One whole model the table's correction was fitted on (a typed dict: callers index it as the JSON)."""

    model: Annotated[str, Field(description="`dense`, `uniform50`, `uniform75` or `randomN`")]
    arch: Annotated[
        dict[str, Any], Field(description="its `embed_dim` and per block `num_heads`, `head_dim`, `mlp_hidden`")
    ]
    measured_ms: Annotated[float, Field(description="measured median (ms)")]
    raw_ms: Annotated[float, Field(description="the parts' sum before the correction (ms)")]
    predicted_ms: Annotated[float, Field(description="after the correction (ms)")]


class LatencyTable(ResultModel):
    """Per-part latency grids of one model on one backend (ms, net of the per-run overhead); a profile's JSON file."""

    key: dict[str, Any] = Field(
        description="what the numbers depend on: model arch, backend, precision, batch, threads, machine, libraries"
    )
    overhead_ms: float = Field(description="per-run call overhead (an empty graph), counted once per model")
    embeds: list[int] = Field(description="measured embed widths, ascending")
    fixed_ms: list[float] = Field(description="fixed part (stem and head) per embed")
    head_dims: list[int] = Field(description="measured head dims, ascending")
    attn_ms: dict[str, list[list[float]]] = Field(
        description='per head count (`"1"`, `"2"` ...), a grid [embed][head dim]'
    )
    hiddens: list[int] = Field(description="measured MLP widths, ascending")
    mlp_ms: list[list[float]] = Field(description="grid [embed][hidden]")
    scale: float = Field(1.0, description="affine correction of the summed prediction (fitted on whole models)")
    offset: float = Field(0.0, description="affine correction, ms")
    fit: list[FitPoint] = Field(default_factory=list, description="the whole models the correction was fitted on")
    profile_seconds: float = Field(0.0, description="how long profiling took")
    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="`1`")
    _fixed: np.ndarray = PrivateAttr()
    _attn: dict[int, np.ndarray] = PrivateAttr()
    _mlp: np.ndarray = PrivateAttr()

    def __init__(self, *args: Any, **fields: Any) -> None:
        # NOTE: positional too, as the dataclass it was (``profile.measure`` and the tests' tables build it so)
        super().__init__(**dict(zip(type(self).model_fields, args, strict=False)), **fields)

    def model_post_init(self, context: Any) -> None:
        """The monotone grids the predictions interpolate (computed once)."""
        self._fixed = _monotone(np.asarray(self.fixed_ms))
        self._attn = {int(h): _monotone(np.asarray(g)) for h, g in self.attn_ms.items()}
        self._mlp = _monotone(np.asarray(self.mlp_ms))

    # -- parts ---------------------------------------------------------------------------------------------
    def fixed(self, embed: float) -> float:
        """Stem and head at embed width ``embed`` (ms)."""
        i, j, w = _interp1(self.embeds, embed)
        return float((1 - w) * self._fixed[i] + w * self._fixed[j])

    def attn(self, embed: float, heads: int, head_dim: float) -> float:
        """One attention part (ms); head counts are measured exactly, head dims interpolated."""
        if heads not in self._attn:
            raise ArtifactError(f"latency table has no attention with {heads} heads (has {sorted(self._attn)})")
        return _bilinear(self.embeds, self.head_dims, self._attn[heads], embed, head_dim)

    def mlp(self, embed: float, hidden: float) -> float:
        """One MLP part (ms)."""
        return _bilinear(self.embeds, self.hiddens, self._mlp, embed, hidden)

    def raw_ms(self, spec: ArchSpec) -> float:
        """Overhead plus the sum of the parts of ``spec``, before the affine correction."""
        e = spec.embed_dim
        total = self.overhead_ms + self.fixed(e)
        for h, d, m in zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True):
            total += self.attn(e, h, d) + self.mlp(e, m)
        return total

    def predict(self, spec: ArchSpec) -> float:
        """Predicted median latency of a whole model of ``spec`` (ms)."""
        return self.scale * self.raw_ms(spec) + self.offset

    # -- identity and files -----------------------------------------------------------------------------------
    @property
    def digest(self) -> str:
        """Short hash of ``key`` (the cache key)."""
        return key_digest(self.key)

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON, atomically.

        Args:
            path: the file.
        """
        return self.write(path)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table written by ``save``; one ``ArtifactError`` line if it is missing, malformed or old.

        Args:
            path: the file.
        """
        return cls.read(path, "latency table")


def check_profilable(spec: ArchSpec) -> None:
    """A table times a ViT's parts (stem and head, attention and MLP at one embed width); any other family fails.

    Args:
        spec: the dense model a table would be profiled for (or read for).
    """
    if spec.family != "vit":
        raise ConfigError(
            f"latency tables cover ViT models only; {spec.base_model} is a {spec.family} model: search it with a "
            "FLOPs target"
        )


def arch_key(spec: ArchSpec) -> dict[str, Any]:
    """The part of a table key that names the model (its widths and geometry, not its normalisation)."""
    return {k: v for k, v in spec.to_dict().items() if k not in ("mean", "std")}


def key_digest(key: dict[str, Any]) -> str:
    """sha256 (16 hex digits) of a table key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
