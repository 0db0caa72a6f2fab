"""Latency measurement (trtexec's method) on real ONNX Runtime sessions, and interleaved dense-vs-subnet timing."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from ofb_deploy.cli import main
from ofb_deploy.data.readers import ArrayReader
from ofb_deploy.engines import make_runner
from ofb_deploy.engines.base import Runner, TensorSpec
from ofb_deploy.errors import ConfigError
from ofb_deploy.models import create_model, save_model_dir
from ofb_deploy.models.io import INPUT_NAME, OUTPUT_NAME
from ofb_deploy.timing.interleaved import InterleavedResult, measure_interleaved
from ofb_deploy.timing.latency import LatencyReport, machine_info, measure_latency
from ofb_deploy.utils.io import read_json


class SleepRunner(Runner):
    """A backend whose every run takes a known time; it records the order runners were called in."""

    backend = "sleep"

    def __init__(self, name: str, seconds: float, calls: list[str]) -> None:
        super().__init__(name)
        self.seconds, self.calls = seconds, calls

    def _activate(self) -> None: ...

    def _deactivate(self) -> None: ...

    def _input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(INPUT_NAME, (-1, 1, 4, 4), "float32")]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append(self.name)
        time.sleep(self.seconds)
        return {OUTPUT_NAME: np.zeros((len(feed[INPUT_NAME]), 2), np.float32)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("test_vit")
    save_model_dir(create_model("test_vit"), out)
    return out


@pytest.fixture(scope="module")
def onnx_path(model_dir: Path) -> Path:
    from ofb_deploy.onnxtools.export import export_onnx

    path = model_dir / "model.onnx"
    export_onnx(create_model("local-dir:" + str(model_dir)), path)
    return path


def _feed(batch: int) -> dict[str, np.ndarray]:
    return {INPUT_NAME: np.random.default_rng(0).standard_normal((batch, 1, 16, 16), dtype=np.float32)}


def test_statistics_of_known_samples() -> None:
    report = LatencyReport.from_samples(np.arange(1, 101) / 1e3, backend="x", batch_size=4)
    assert report.iterations == 100 and report.min_ms == pytest.approx(1) and report.max_ms == pytest.approx(100)
    assert report.median_ms == pytest.approx(50.5) and report.p50_ms == report.median_ms
    assert report.p90_ms == pytest.approx(90.1) and report.p99_ms == pytest.approx(99.01)
    assert report.mean_ms == pytest.approx(50.5) and report.total_s == pytest.approx(5.05)
    assert report.throughput == pytest.approx(4 * 1000 / 50.5)
    doc = report.to_dict()
    assert doc["p50_ms"] == report.median_ms and "samples_ms" not in doc
    assert len(report.to_dict(samples=True)["samples_ms"]) == 100
    with pytest.raises(ConfigError):
        LatencyReport.from_samples([], backend="x", batch_size=1)


def test_ort_latency_meets_iteration_and_time_floors(onnx_path: Path) -> None:
    runner = make_runner("ort-cpu", onnx_path, threads=1)
    report = measure_latency(runner, _feed(4), warmup_s=0.05, min_iters=7, min_time_s=0.2)
    assert not runner.is_active  # activated for the measurement only
    assert report.iterations >= 7 and report.total_s >= 0.2 * 0.99
    assert report.warmup_s >= 0.05 and report.batch_size == 4 and report.backend == "ort-cpu"
    assert report.min_ms <= report.median_ms <= report.p90_ms <= report.p95_ms <= report.p99_ms <= report.max_ms
    assert report.runner["threads"] == 1 and report.runner["library"] == "onnxruntime"


def test_min_iters_and_max_iters(onnx_path: Path) -> None:
    with make_runner("ort-cpu", onnx_path) as runner:
        exact = measure_latency(runner, _feed(1), warmup_s=0, min_iters=5, min_time_s=0)
        capped = measure_latency(runner, _feed(1), warmup_s=0, min_iters=3, min_time_s=60, max_iters=4)
        assert runner.is_active  # an active runner stays active
    assert exact.iterations == 5 and capped.iterations == 4


def test_reader_feed_and_bad_arguments(onnx_path: Path) -> None:
    reader = ArrayReader(np.zeros((10, 1, 16, 16), np.float32), batch_size=3)
    report = measure_latency(make_runner("ort-cpu", onnx_path), reader, warmup_s=0, min_iters=2, min_time_s=0)
    assert report.batch_size == 3
    runner = make_runner("ort-cpu", onnx_path)
    with pytest.raises(ConfigError):
        measure_latency(runner, _feed(1), min_iters=0)
    with pytest.raises(ConfigError):
        measure_latency(runner, _feed(1), warmup_s=-1)
    with pytest.raises(ConfigError):
        measure_latency(runner, ArrayReader(np.zeros((0, 1, 16, 16), np.float32)))


def test_interleaved_alternates_rounds_and_finds_the_speedup() -> None:
    calls: list[str] = []
    runners = {"dense": SleepRunner("dense", 0.006, calls), "subnet": SleepRunner("subnet", 0.003, calls)}
    result = measure_interleaved(runners, _feed(2), rounds=4, warmup_s=0, min_iters=8, min_time_s=0, settle=0)
    # each round times one runner's block of 2 iterations; the order flips every round: A B, B A, A B, B A
    blocks = [calls[i] for i in range(2, len(calls), 2)]  # skip the two warm-up calls
    assert blocks == ["dense", "subnet", "subnet", "dense", "dense", "subnet", "subnet", "dense"]
    assert all(len(m) == 4 for m in result.round_medians_ms.values())
    assert result.reports["dense"].iterations == 8
    # NOTE: no bound on the measured ratio (a busy machine stretches any sleep); sleep never returns early, so every
    # sample is at least its runner's sleep, and the speedups are positive ratios of those samples
    assert min(result.reports["dense"].samples_ms) >= 6.0 and min(result.reports["subnet"].samples_ms) >= 3.0
    assert result.speedup() > 0 and result.round_speedup() > 0
    assert not any(r.is_active for r in runners.values())


def test_speedups_of_known_samples() -> None:
    """Hand-computed: medians 4 and 2 ms give 2.0; round medians 6/2, 4/2, 3/3 give ratios 3, 2, 1 -> median 2."""
    reports = {"dense": LatencyReport.from_samples([0.002, 0.004, 0.006], backend="x", batch_size=1),
               "subnet": LatencyReport.from_samples([0.001, 0.002, 0.009], backend="x", batch_size=1)}  # fmt: skip
    result = InterleavedResult(reports, {"dense": [6.0, 4.0, 3.0], "subnet": [2.0, 2.0, 3.0]}, rounds=3)
    assert result.speedup() == pytest.approx(2.0) and result.round_speedup() == pytest.approx(2.0)


def test_interleaved_settles_every_slice_untimed() -> None:
    """Each slice starts with ``settle`` runs that are not timed (the switch from the previous runner)."""
    calls: list[str] = []
    runners = {"a": SleepRunner("a", 0.002, calls), "b": SleepRunner("b", 0.002, calls)}
    result = measure_interleaved(runners, _feed(2), rounds=3, warmup_s=0, min_iters=6, min_time_s=0, settle=2)
    assert calls.count("a") == 1 + 3 * (2 + 2)  # one warm-up run, then per round 2 settling + 2 timed runs
    assert result.reports["a"].iterations == 6 and len(result.reports["a"].samples_ms) == 6
    slices = [calls[i : i + 4] for i in range(2, len(calls), 4)]
    assert all(len(set(s)) == 1 for s in slices)  # a runner's settling runs and timed runs are one block
    with pytest.raises(ConfigError, match="settle"):
        measure_interleaved(runners, _feed(2), settle=-1)


def test_interleaved_real_sessions(onnx_path: Path) -> None:
    runners = {"a": make_runner("ort-cpu", onnx_path), "b": make_runner("ort-cpu", onnx_path)}
    result = measure_interleaved(runners, _feed(2), rounds=2, warmup_s=0.01, min_iters=4, min_time_s=0.05)
    assert set(result.reports) == {"a", "b"} and result.reports["a"].iterations >= 4
    assert math.isfinite(result.speedup("a", "b")) and result.speedup("a", "b") > 0  # no bound: a busy machine
    with pytest.raises(ConfigError, match="rounds"):
        measure_interleaved(runners, _feed(2), rounds=0)


def test_machine_info() -> None:
    info = machine_info()
    assert info["cpu"] and info["cpu_count"] >= 1
    assert info["libraries"]["onnxruntime"] and "gpu" in info


def test_bench_cli_with_baseline(model_dir: Path, onnx_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", str(onnx_path), "--batch", "1,2", "--baseline", str(model_dir), "--min-time-s", "0.05"]
    assert main([*argv, "--warmup-s", "0.01", "--min-iters", "3", "--threads", "1", "--json", str(out)]) == 0
    doc = read_json(out)
    assert doc["backend"] == "ort-cpu" and doc["precision"] == "fp32" and set(doc["results"]) == {"1", "2"}
    for row in doc["results"].values():
        assert row["iterations"] >= 3 and row["baseline"]["iterations"] >= 3
        assert row["speedup"] > 0 and row["baseline"]["median_ms"] > 0
    assert doc["machine"]["cpu"] and doc["runner"]["threads"] == 1


def test_bench_cli_model_folder_on_torch(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert (
        main(["bench", str(model_dir), "--batch", "2", "--min-time-s", "0", "--min-iters", "2", "--json", str(out)])
        == 0
    )
    assert read_json(out)["backend"] == "torch"


def test_bench_cli_errors(model_dir: Path, tmp_path: Path) -> None:
    assert main(["bench", str(model_dir), "--batch", "1,a"]) == ConfigError.exit_code
    assert main(["bench", str(model_dir), "--batch", "0"]) == ConfigError.exit_code
    assert main(["bench", str(tmp_path / "nothing.onnx")]) == 4
    (tmp_path / "x.txt").write_text("x")
    assert main(["bench", str(tmp_path / "x.txt")]) == ConfigError.exit_code
    assert main(["bench", str(model_dir), "--backend", "nope"]) == ConfigError.exit_code
