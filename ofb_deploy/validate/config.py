"""``ValidateConfig`` (what ``validate_run`` measures) and ``TargetsConfig`` (the limits the report checks)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from ofb_deploy.choices import Backend, Precision
from ofb_deploy.timing.config import TimingConfig
from ofb_deploy.utils.config import ConfigModel, Float, ImageCount, PositiveFloat, PositiveInt, split_list


def _optional_list(value: Any) -> Any:
    return None if value is None else split_list(value)


def latency_key(backend: str, precision: str) -> str:
    """Key of a backend and precision in reports: ``ort-cpu`` (fp32) or ``ort-cpu.int8``."""
    return backend if precision == "fp32" else f"{backend}.{precision}"


def _speedup_key(key: Any) -> str:
    backend, _, precision = str(key).partition(".")
    if backend not in Backend.values() or (precision and precision not in Precision.values()):
        raise ValueError(f"{key!r} is not a backend key: BACKEND or BACKEND.PRECISION, e.g. ort-cpu or ort-cpu.int8")
    return str(key)


def _batch_key(key: Any) -> str:
    if isinstance(key, bool) or not str(key).isdigit() or int(key) < 1:
        raise ValueError(f"{key!r} is not a batch size (a positive integer)")
    return str(int(key))


SpeedupKey = Annotated[str, BeforeValidator(_speedup_key)]
BatchKey = Annotated[str, BeforeValidator(_batch_key)]


class ValidateConfig(TimingConfig):
    """What ``validate_run`` measures: how it times (every ``TimingConfig`` field), and

    Args:
        backends: backends timed and evaluated (``None``: every engine built and runnable here, plus ``torch``).
        precisions: precisions evaluated (``None``: all built).
        val_size: cap on validation images (``all``: the data config's whole validation split).
        eval_batch: batch size of the accuracy passes.
        latency: time the engines (off: accuracy only).
    """

    SECTION: ClassVar[str] = "validate"

    backends: Annotated[tuple[Backend, ...] | None, BeforeValidator(_optional_list)] = None
    precisions: Annotated[tuple[Precision, ...] | None, BeforeValidator(_optional_list)] = None
    val_size: ImageCount = None
    eval_batch: PositiveInt = 256
    latency: bool = True


class TargetsConfig(ConfigModel):
    """Pass/fail limits the report checks (``None``: not checked).

    Args:
        max_flops_ratio: subnet MACs / dense MACs at most this, in (0, 1].
        max_top1_drop: dense top-1 minus subnet top-1 at most this many points, in [0, 100].
        min_speedup: ``{backend key: {batch: speedup}}`` minimum dense / subnet median latency ratios, e.g.
            ``{"ort-cpu": {"32": 1.3}}`` (a key is ``latency_key``: ``ort-cpu`` or ``ort-cpu.int8``).
    """

    SECTION: ClassVar[str] = "targets"

    max_flops_ratio: Annotated[Float, Field(gt=0, le=1)] | None = None
    max_top1_drop: Annotated[Float, Field(ge=0, le=100)] | None = None
    min_speedup: dict[SpeedupKey, dict[BatchKey, PositiveFloat]] = Field(default_factory=dict)
