"""The report document (``RunDir.report_json_path``) as a typed model.

``build_report`` makes a ``Report`` from the validation results and the other result files of the run;
``render_markdown`` and ``plots.py`` read its attributes. docs/report_schema.md is generated from these models
(``python -m ofb_deploy.report.schema``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ofb_deploy.compare.results import Budget, Checks, DenseResult, LatencyMs
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.utils.results import ResultModel
from ofb_deploy.validate.results import LatencyCheck, LatencyStats, Machine

REPORT_SCHEMA_VERSION = 1


class Latency(ResultModel):
    """One model timed at one backend and batch (the report's subset of [LatencyStats](#latencystats))."""

    p50_ms: float = Field(description="median")
    p90_ms: float = Field(description="90th percentile")
    p95_ms: float = Field(description="95th percentile")
    p99_ms: float = Field(description="99th percentile")
    mean_ms: float = Field(description="mean")
    min_ms: float = Field(description="fastest iteration")
    max_ms: float = Field(description="slowest iteration")
    throughput: float = Field(description="images per second at the median (`batch * 1000 / p50_ms`)")
    iterations: int = Field(description="timed iterations")

    @classmethod
    def of(cls, stats: LatencyStats) -> Latency:
        """The report's fields of a validation measurement."""
        return cls.model_validate(stats.model_dump())


class Model(ResultModel):
    """The dense model (and the base of the subnet's section)."""

    arch: ArchSpec = Field(description="its architecture")
    flops: int = Field(description="MACs per image")
    params: int = Field(description="parameters")
    top1: float | None = Field(description="top-1 (%) of the PyTorch fp32 model")
    top5: float | None = Field(description="top-5 (%) of the PyTorch fp32 model")
    latency: dict[str, dict[str, Latency]] = Field(description="`latency[backend key][batch]`")


class Subnet(Model):
    """The searched, sliced (and fine-tuned, when enabled) subnet."""

    flops_ratio: float = Field(description="subnet / dense MACs")
    params_ratio: float = Field(description="subnet / dense parameters")
    sliced_top1: float | None = Field(description="top-1 of the sliced model before fine-tuning (`null`: none)")


class Engine(ResultModel):
    """One built engine's accuracy and its agreement with the PyTorch model of its role."""

    OMIT_NONE = ("error",)
    role: str = Field(description="`dense` or `subnet`")
    backend: str = Field(description="backend name")
    precision: str = Field(description="`fp32`, `fp16` or `int8`")
    key: str = Field(description="backend key (see conventions)")
    top1: float | None = Field(description="top-1 (%) of the engine")
    top5: float | None = Field(description="top-5 (%) of the engine")
    top1_agreement: float | None = Field(description="fraction (0-1) of images whose top-1 equals PyTorch's")
    max_abs: float | None = Field(description="largest absolute logit difference from PyTorch")
    cosine: float | None = Field(description="mean per-image cosine similarity of the logits")
    error: str | None = Field(None, description="present only when the engine could not be evaluated")


class TargetCheck(ResultModel):
    """One limit of the run config's `targets` (a speedup that was not measured has `value: null` and fails)."""

    value: float | None = Field(description="the measured value")
    limit: float = Field(description="the limit from the run config")
    passed: bool = Field(description="whether the value is within the limit")


class SearchInfo(ResultModel):
    """The gist of the search result."""

    base_model: str | None = Field(None, description="registry name of the dense model")
    dense_flops: int | None = Field(None, description="dense MACs")
    target_flops: int | None = Field(None, description="the MACs target (`null`: a latency target)")
    flops: int | None = Field(None, description="the subnet's MACs")
    converged: bool | None = Field(None, description="every module settled by the pruning rounds")
    unconverged: list[str] = Field(default_factory=list, description="modules chosen jointly at the deadline")
    epochs: int | None = Field(None, description="search epochs")
    seed: int | None = Field(None, description="search seed")


class CompareMethod(ResultModel):
    """One method of `ofb-deploy compare` over its seeds."""

    top1_mean: float = Field(description="mean top-1 (%)")
    top1: dict[str, float | None] = Field(description="top-1 per seed")
    flops: float = Field(description="mean MACs")
    params: float = Field(description="mean parameters")
    latency_ms: LatencyMs = Field(description="mean ORT CPU median (ms) per batch")


class CompareSummary(ResultModel):
    """The gist of the compare results (the full per-seed results stay there)."""

    budget: Budget = Field(description="the epochs every method got")
    dense: DenseResult = Field(description="the dense model")
    methods: dict[str, CompareMethod] = Field(description="method name to its results")
    checks: Checks = Field(description="fairness checks and verdicts")
    batches: list[int] = Field(description="batch sizes timed")
    plot: str | None = Field(description="file name of the plot in the compare folder (`null`: not drawn)")


class SweepPoint(ResultModel):
    """One method at one FLOPs target of `ofb-deploy sweep`."""

    target: str = Field(description="the FLOPs target as given")
    method: str = Field(description="`ofb` or `uniform-keep-embed`")
    top1: float | None = Field(description="top-1 (%)")
    flops: int = Field(description="MACs per image")
    flops_ratio: float = Field(description="MACs / dense MACs")
    params: int = Field(description="parameters")
    latency_ms: LatencyMs = Field(description="ORT CPU median (ms) per batch")


class SweepSummary(ResultModel):
    """The rows of the sweep results."""

    budget_epochs: int = Field(description="epochs every model got")
    dense: DenseResult = Field(description="the dense model")
    rows: list[SweepPoint] = Field(description="one per target and method")
    batches: list[int] = Field(description="batch sizes timed")
    plot: str | None = Field(description="file name of the plot in the sweep folder (`null`: not drawn)")


class Report(ResultModel):
    """The report: what the run achieved, rendered from the other result files."""

    schema_version: Literal[1] = Field(REPORT_SCHEMA_VERSION, description="`1`")
    created_at: str = Field(description="local time `YYYY-MM-DDTHH:MM:SS`")
    run_dir: str = Field(description="the run directory")
    base_model: str = Field(description="registry name of the dense model")
    data: dict[str, Any] = Field(description="the `DataConfig` (`name`, `root`, `seed`, caps ...) plus `val_samples`")
    search: SearchInfo | None = Field(description="from the search result (`null`: none)")
    machine: Machine = Field(description="what the numbers were measured on")
    dense: Model = Field(description="the dense model")
    subnet: Subnet = Field(description="the subnet")
    top1_drop: float | None = Field(description="`dense.top1 - subnet.top1` in points")
    speedup: dict[str, dict[str, float]] = Field(
        description="`speedup[backend][batch]` = dense median latency / subnet median latency (> 1: subnet faster)"
    )
    speedup_per_flops: dict[str, dict[str, float]] = Field(
        description="`speedup_per_flops[backend][batch]` = speedup / (dense FLOPs / subnet FLOPs); 1.0 means the "
        "whole FLOPs cut became wall time"
    )
    engines: list[Engine] = Field(description="one entry per built engine")
    errors: dict[str, str] = Field(
        description="what could not be measured: key (an engine path, `latency BACKEND [batch N]`, or `BACKEND: N "
        "engine(s) built, not run here`) to reason"
    )
    targets: dict[str, TargetCheck] = Field(
        description="one entry per limit in the run config's `targets`: `flops_ratio` (from `max_flops_ratio`), "
        "`top1_drop` (from `max_top1_drop`) and `speedup BACKEND batch N` (from `min_speedup: {BACKEND: {N: x}}`)"
    )
    stages: dict[str, float | None] = Field(
        description="stage name to wall seconds as `ofb-deploy run` recorded them (`null`: run on its own)"
    )
    latency_prediction: LatencyCheck | None = Field(
        description="the search's latency prediction against validate's measurement (`null`: no latency target)"
    )
    compare: CompareSummary | None = Field(None, description="`null` unless `ofb-deploy compare` ran on the run")
    sweep: SweepSummary | None = Field(None, description="`null` unless `ofb-deploy sweep` ran on the run")
