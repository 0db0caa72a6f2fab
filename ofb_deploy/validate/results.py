"""The validation results (``RunDir.validate_path``) as typed models.

``validate_run`` builds a ``ValidationResult`` and writes it; the report reads it back with ``read_validation``.
The parts the compare and the report reuse live here too: ``Machine`` (what the numbers were measured on) and
``LatencyStats`` (one runner timed at one batch, ``timing.latency.LatencyReport``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.timing.latency import LatencyReport
from ofb_deploy.utils.results import ResultModel

SCHEMA_VERSION = 1


class Machine(ResultModel):
    """The machine the numbers were measured on (as ``ofb-deploy info`` prints it)."""

    OMIT_NONE = ("machine", "gpu_driver")
    cpu: str = Field(description="CPU model name")
    cpu_count: int | None = Field(None, description="logical cores of the machine")
    machine: str | None = Field(None, description="processor architecture (`x86_64`, `aarch64`)")
    cpu_affinity: int | None = Field(None, description="cores this process was allowed to run on")
    gpu_driver: str | None = Field(None, description="NVIDIA driver version (present only with a GPU)")
    libraries: dict[str, str] = Field(default_factory=dict, description="library versions, providers, devices")
    gpu: str = Field("none", description="CUDA devices (`none` without one)")


class LatencyStats(ResultModel):
    """Per-iteration wall times of one runner at one batch size (all times in milliseconds)."""

    backend: str = Field(description="the runner's backend name")
    batch_size: int = Field(description="images per iteration")
    iterations: int = Field(description="timed iterations")
    total_s: float = Field(description="total timed seconds")
    min_ms: float = Field(description="fastest iteration")
    mean_ms: float = Field(description="mean")
    median_ms: float = Field(description="median")
    p90_ms: float = Field(description="90th percentile")
    p95_ms: float = Field(description="95th percentile")
    p99_ms: float = Field(description="99th percentile")
    max_ms: float = Field(description="slowest iteration")
    std_ms: float = Field(description="standard deviation")
    throughput: float = Field(description="images per second at the median (`batch_size * 1000 / median_ms`)")
    warmup_s: float = Field(0.0, description="warm-up seconds before timing")
    runner: dict[str, Any] = Field(
        default_factory=dict, description="the runner's description: library version, device, precision, threads"
    )
    p50_ms: float = Field(description="the median again (the report's name)")

    @classmethod
    def of(cls, report: LatencyReport) -> LatencyStats:
        """The stats of a measured ``LatencyReport`` (raw samples left out)."""
        return cls.model_validate(report.to_dict())


class Failure(ResultModel):
    """What stopped a measurement (in place of its result)."""

    error: str = Field(description="the one-line error")


class PairLatency(ResultModel):
    """Dense and subnet timed interleaved in one process at one backend and batch."""

    OMIT_NONE = ("speedup_per_flops",)
    dense: LatencyStats = Field(description="the dense model")
    subnet: LatencyStats = Field(description="the subnet")
    speedup: float = Field(
        description="median over the interleaved rounds of each round's dense median / subnet median (> 1: the "
        "subnet is faster); the verdict's number, since drift in machine load hits both sides of a round"
    )
    pooled_speedup: float = Field(description="dense median / subnet median over all rounds' samples pooled")
    round_ratios: list[float] = Field(
        default_factory=list, description="each interleaved round's dense median / subnet median (their spread)"
    )
    speedup_per_flops: float | None = Field(
        None, description="speedup / (dense MACs / subnet MACs); 1.0: the whole FLOPs cut became wall time"
    )


# a backend key's batches (batch as a string, as JSON object keys must be), or what stopped the whole backend
BackendLatency = dict[str, PairLatency | Failure] | Failure


class TopK(ResultModel):
    """Top-1 and top-5 accuracy in percent."""

    top1: float = Field(description="top-1 (%)")
    top5: float = Field(description="top-5 (%)")


class ModelResult(ResultModel):
    """A role's PyTorch fp32 model (the reference of its engines)."""

    model_dir: str = Field(description="the model folder")
    arch: ArchSpec = Field(description="its architecture")
    flops: int = Field(description="MACs per image")
    params: int = Field(description="parameters")
    top1: float | None = Field(None, description="top-1 (%) on the validation images")
    top5: float | None = Field(None, description="top-5 (%) on the validation images")


class Agreement(ResultModel):
    """An engine's logits against the PyTorch model of its role (``onnxtools.parity.AccuracyReport``)."""

    output: str = Field(description="the output compared")
    samples: int = Field(description="images compared")
    max_abs: float = Field(description="largest absolute logit difference")
    mean_abs: float = Field(description="mean absolute difference")
    p99_abs: float = Field(description="99th percentile of the absolute difference")
    cosine: float = Field(description="per-image cosine similarity of the logits, averaged")
    min_cosine: float = Field(description="the worst image's cosine similarity")
    top1_agreement: float = Field(description="fraction (0-1) of images whose top-1 class agrees")
    failures: list[str] = Field(default_factory=list, description="tolerances it fails (none are set here)")
    passed: bool = Field(True, description="no failures")


class EngineResult(ResultModel):
    """One built engine evaluated on the validation images."""

    OMIT_NONE = ("top1", "top5", "agreement", "error")
    role: str = Field(description="`dense` or `subnet`")
    backend: str = Field(description="backend name")
    precision: str = Field(description="`fp32`, `fp16` or `int8`")
    key: str = Field(description="backend key (see conventions)")
    path: str = Field(description="the engine file")
    top1: float | None = Field(None, description="top-1 (%) (absent when the engine failed)")
    top5: float | None = Field(None, description="top-5 (%) (absent when the engine failed)")
    agreement: Agreement | None = Field(None, description="against the PyTorch model of its role (absent on error)")
    error: str | None = Field(None, description="why it could not be evaluated (present only then)")


class PredictedLatency(ResultModel):
    """The search's prediction for its subnet (the search result's ``latency``; only with a latency target)."""

    target: str = Field(description="the search's target (`1.2ms` or `0.6x`)")
    target_ms: float = Field(description="the target in milliseconds")
    predicted_ms: float = Field(description="the table's prediction for the subnet")
    dense_predicted_ms: float | None = Field(None, description="the table's prediction for the dense model")
    table_digest: str = Field(description="the latency table's key digest")
    backend: str = Field(description="backend the table was profiled on")
    batch: int = Field(description="batch size of the table")
    precision: str = Field(description="precision of the table")
    threads: int | None = Field(None, description="CPU threads of the table")


class LatencyCheck(PredictedLatency):
    """The search's prediction against what validate measured on that backend and batch."""

    OMIT_NONE = ("dense_measured_ms", "drift", "predicted_share", "measured_share", "share_error_pct", "note")
    measured_ms: float | None = Field(description="the subnet's measured median (`null`: not timed comparably)")
    error_pct: float | None = Field(description="(predicted - measured) / measured, in percent")
    dense_measured_ms: float | None = Field(None, description="the dense model's measured median")
    drift: float | None = Field(None, description="dense measured / dense predicted: the machine now vs profiling")
    predicted_share: float | None = Field(None, description="subnet / dense as predicted")
    measured_share: float | None = Field(None, description="subnet / dense as measured (timed together)")
    share_error_pct: float | None = Field(None, description="error of the predicted share, in percent")
    note: str | None = Field(None, description="why nothing was compared (another thread count than the table's)")


class ValidationResult(ResultModel):
    """The validation results: the raw measurements the report is made from."""

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="`1`")
    created_at: str = Field(description="local time `YYYY-MM-DDTHH:MM:SS`")
    config: dict[str, Any] = Field(description="the `ValidateConfig` used (as `ofb-deploy config show` prints it)")
    data: dict[str, Any] = Field(description="the run's `DataConfig` plus `val_samples` (images evaluated)")
    machine: Machine = Field(description="what the numbers were measured on")
    models: dict[str, ModelResult] = Field(description="`dense` and `subnet`: the PyTorch fp32 models")
    sliced: TopK | None = Field(description="the sliced model before fine-tuning (`null`: no fine-tuning)")
    flops_ratio: float = Field(description="dense MACs / subnet MACs")
    engines: list[EngineResult] = Field(description="every engine evaluated")
    skipped_engines: dict[str, str] = Field(description="engine file name to why it cannot run here")
    latency: dict[str, BackendLatency] = Field(
        description="`latency[backend key][batch]`: dense and subnet timed together, or what stopped a batch or a "
        "whole backend key"
    )
    latency_prediction: LatencyCheck | None = Field(description="`null` unless the search had a latency target")
    seconds: float = Field(description="wall seconds of the validation")

    def timed(self) -> Iterator[tuple[str, str, PairLatency]]:
        """``(backend key, batch, pair)`` of every batch timed without error."""
        for key, per_batch in self.latency.items():
            if isinstance(per_batch, dict):
                for batch, entry in per_batch.items():
                    if isinstance(entry, PairLatency):
                        yield key, batch, entry
