"""``time_models``: ONNX Runtime CPU latency of several model folders, interleaved in one process (compare, sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ofb_deploy.compare.config import CompareConfig
from ofb_deploy.data import make_reader
from ofb_deploy.engines import make_runner
from ofb_deploy.models.checkpoint import load_model_dir
from ofb_deploy.onnxtools.export import export_onnx
from ofb_deploy.timing.interleaved import measure_interleaved
from ofb_deploy.utils.threads import cpu_threads


def time_models(
    models: dict[str, Path],
    onnx_paths: dict[str, Path],
    data_reader_source: Any,
    config: CompareConfig,
) -> dict[str, dict[str, float]]:
    """ORT CPU median latency (ms) of every model at every batch, interleaved in one process.

    Args:
        models: label to model folder (exported to ``onnx_paths[label]`` when that file is missing).
        onnx_paths: label to ONNX path.
        data_reader_source: the validation data set (real images feed the timing).
        config: batches and timing settings.
    """
    threads = cpu_threads(config.threads)  # the count validate and the latency tables time at
    for label, folder in models.items():
        if not onnx_paths[label].is_file():
            export_onnx(load_model_dir(folder).eval(), onnx_paths[label])
    out: dict[str, dict[str, float]] = {label: {} for label in models}
    for batch in config.batches:
        feed = make_reader(data_reader_source, batch_size=batch, limit=batch)
        runners = {label: make_runner("ort-cpu", onnx_paths[label], threads=threads) for label in models}
        result = measure_interleaved(runners, feed, rounds=config.rounds, warmup_s=config.warmup_s,
                                     min_iters=config.min_iters, min_time_s=config.min_time_s)  # fmt: skip
        for label, report in result.reports.items():
            out[label][str(batch)] = round(report.median_ms, 4)
    return out
