"""The results of ``ofb-deploy compare`` (``RunDir.compare_json``) and ``ofb-deploy sweep`` (``RunDir.sweep_json``)
as typed models.

Both hold method results (``MethodResult``: one method at one seed, the file each method folder keeps as
``METHOD_FILES["result"]``) and ONNX Runtime CPU medians timed interleaved in one process (``latency_ms[batch]``,
batch as a string). ``compare_run`` and ``sweep_run`` build them and write them; the report reads them back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ofb_deploy.utils.results import ResultModel
from ofb_deploy.validate.results import Machine, PredictedLatency

SCHEMA_VERSION = 1

LatencyMs = dict[str, float]  # batch (as a string) to the median latency in ms


class Widths(ResultModel):
    """A ViT's widths: the embed width and, per block, heads, head dim and MLP width."""

    embed_dim: int = Field(description="embed width")
    num_heads: list[int] = Field(description="heads per block")
    head_dim: list[int] = Field(description="per-head dim per block")
    mlp_hidden: list[int] = Field(description="MLP width per block")


class LatencyBudget(ResultModel):
    """``ofb-latency``'s budget: the OFB subnet's latency as a share of the dense model's (``compare/latency.py``)."""

    share: float = Field(description="the table's predicted share for the OFB subnet (the search's target)")
    target_latency: str = Field(description="the target as the search takes it (`0.7312x`)")
    measured_share: float = Field(description="median of the measured shares")
    table_error_pct: float = Field(description="predicted share over measured share - 1, in percent")
    pass_shares: list[float] = Field(description="the measured share of each timing pass")
    dense_ms: float = Field(description="the dense model's median over the passes")
    ofb_ms: float = Field(description="the OFB subnet's median over the passes")
    ofb_arch: Widths = Field(description="the OFB subnet the budget is for")
    timed_from_seed: int = Field(description="the seed whose OFB subnet was timed")
    batch: int = Field(description="batch size (the search's latency batch)")
    threads: int = Field(description="CPU threads (the table's)")
    rounds: int = Field(description="interleaved rounds per pass")
    passes: int = Field(description="timing passes")
    table_digest: str = Field(description="the latency table's key digest")
    table_dense_predicted_ms: float = Field(description="the table's prediction for the dense model")


class MethodResult(ResultModel):
    """One method at one seed: its fine-tuned model and what it cost."""

    OMIT_NONE = ("reused", "seconds", "ratio", "latency_budget", "latency_predicted")
    method: str = Field(description="`ofb`, `uniform-keep-embed`, `uniform`, `torch-pruning`, `scratch` ...")
    seed: int = Field(description="search and fine-tune seed")
    model_dir: str = Field(description="the fine-tuned model folder")
    top1: float | None = Field(description="top-1 (%) on the run's validation split")
    top5: float | None = Field(description="top-5 (%)")
    flops: int = Field(description="MACs per image")
    params: int = Field(description="parameters")
    arch: Widths = Field(description="its widths")
    epochs: int = Field(description="epochs it got (the same for every method)")
    reused: bool | None = Field(None, description="`true`: the run's own OFB result (present only then)")
    seconds: float | None = Field(None, description="wall seconds to make it (absent when reused)")
    ratio: float | None = Field(None, description="Torch-Pruning's uniform pruning ratio (torch-pruning only)")
    latency_budget: LatencyBudget | None = Field(None, description="the budget searched at (ofb-latency only)")
    latency_predicted: PredictedLatency | None = Field(
        None, description="the search's prediction at that budget (ofb-latency only)"
    )


class DenseResult(ResultModel):
    """The run's dense model on the same split and timing."""

    top1: float | None = Field(description="top-1 (%) on the run's validation split")
    flops: int = Field(description="MACs per image")
    params: int = Field(description="parameters")
    latency_ms: LatencyMs = Field(description="ORT CPU median (ms) per batch")


class MethodSummary(ResultModel):
    """A method over its seeds."""

    seeds: dict[str, MethodResult] = Field(description="seed (as a string) to its result")
    top1_mean: float = Field(description="mean top-1 over the seeds")
    top1_min: float = Field(description="lowest top-1")
    top1_max: float = Field(description="highest top-1")
    flops_mean: float = Field(description="mean MACs")
    params_mean: float = Field(description="mean parameters")
    latency_ms: LatencyMs = Field(description="mean ORT CPU median (ms) per batch")


class PairedDifference(ResultModel):
    """OFB minus a method, seed by seed (``compare/stats.py``): the verdict is on these, not on the means."""

    seeds: dict[str, float] = Field(description="seed to OFB's top-1 minus the method's, in points")
    n: int = Field(description="seeds both have")
    mean: float | None = Field(description="mean difference (`null` without seeds)")
    se: float | None = Field(description="its standard error (`null` with fewer than two seeds)")
    wins: int = Field(description="seeds where OFB is ahead")


class SeedLatency(ResultModel):
    """``ofb-latency`` against OFB at one seed."""

    latency_ratio: float = Field(description="ofb-latency's median / OFB's (timed together)")
    top1: float = Field(description="ofb-latency's top-1")
    ofb_top1: float = Field(description="OFB's top-1")
    top1_at_or_above_ofb: bool = Field(description="ofb-latency's top-1 >= OFB's")


class EqualLatency(ResultModel):
    """Whether ``ofb-latency`` met OFB's latency, and with what top-1."""

    batch: int = Field(description="the batch compared (the search's latency batch)")
    seeds: dict[str, SeedLatency] = Field(description="per seed")
    within_10pct: bool = Field(description="every latency ratio within 10% of 1")
    top1_at_or_above_ofb: bool = Field(description="at every seed")


class Checks(ResultModel):
    """Whether the comparison was fair, and its verdicts."""

    OMIT_NONE = ("equal_latency",)
    equal_macs_within_1pct: bool = Field(description="every method (but ofb-latency) within 1% of OFB's MACs")
    equal_epochs: bool = Field(description="every method got OFB's epochs")
    ofb_at_or_above: dict[str, bool] = Field(description="per method: the mean paired difference is >= 0")
    paired: dict[str, PairedDifference] = Field(description="per method: OFB minus it, seed by seed")
    equal_latency: EqualLatency | None = Field(None, description="present only with ofb-latency")


class Budget(ResultModel):
    """The epochs every method got."""

    epochs: int = Field(description="epochs every method got (`ceil(search_passes) + finetune_epochs`)")
    search_passes: float = Field(description="OFB's search epochs as passes over the training set")
    finetune_epochs: int = Field(description="the run's fine-tune epochs")
    finetune: dict[str, Any] = Field(description="the run's fine-tune recipe (`TrainConfig`)")


class CompareLatency(ResultModel):
    """How the models were timed."""

    OMIT_NONE = ("machine",)
    backend: str = Field("ort-cpu", description="always `ort-cpu`")
    batches: list[int] = Field(description="batch sizes timed")
    machine: Machine | None = Field(None, description="the machine (compare only)")


class CompareResult(ResultModel):
    """The compare results: every method at OFB's MACs and epochs, over seeds."""

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="`1`")
    run_dir: str = Field(description="the run directory")
    config: dict[str, Any] = Field(description="the `CompareConfig` used")
    budget: Budget = Field(description="the epoch budget")
    dense: DenseResult = Field(description="the dense model")
    methods: dict[str, MethodSummary] = Field(description="method name to its summary")
    checks: Checks = Field(description="fairness checks and verdicts")
    latency: CompareLatency = Field(description="how latency was timed")


class SweepRow(MethodResult):
    """One method at one FLOPs target."""

    target: str = Field(description="the FLOPs target as given (`0.3`, `800M`)")
    latency_ms: LatencyMs = Field(description="ORT CPU median (ms) per batch")
    flops_ratio: float = Field(description="MACs / dense MACs")


class SweepResult(ResultModel):
    """The sweep results: OFB and keep-embed uniform widths at several FLOPs targets."""

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="`1`")
    run_dir: str = Field(description="the run directory")
    targets: list[str] = Field(description="the FLOPs targets")
    methods: list[str] = Field(description="the methods at each target")
    budget_epochs: int = Field(description="epochs every model got")
    dense: DenseResult = Field(description="the dense model")
    rows: list[SweepRow] = Field(description="one per target and method")
    latency: CompareLatency = Field(description="how latency was timed")
