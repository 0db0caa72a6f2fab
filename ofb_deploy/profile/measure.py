"""``profile_model``: measure a ``LatencyTable`` for a model's search space on one backend (``ofb-deploy profile``).

Grid: up to ``POINTS`` embed widths, head dims and MLP widths spread over the search space's candidates (its ends
included), every head count. The parts (``graphs.py``) of one embed width share one input shape, so they are
timed together, interleaved in alternating rounds in one process, exactly as ``validate`` and ``bench`` time
models (``validate.interleaved``: warm-up by time, medians). An empty graph times the per-run call overhead.
Then three whole models (dense and two uniform shrinks, exported as the pipeline exports them) are timed and an
affine correction of the summed prediction is fitted on them.

A table is cached under its key's digest (model, space, backend, precision, batch, threads, machine, library
versions), so asking again with the same key reads it instead of measuring.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.artifacts import latency_table_path, profile_graph
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.vit import INPUT_NAME, OfbViT
from ofb_deploy.profile.graphs import attn_graph, fixed_graph, mlp_graph
from ofb_deploy.profile.table import LatencyTable, arch_key, check_profilable, key_digest
from ofb_deploy.search.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates
from ofb_deploy.utils.progress import make_progress

log = logging.getLogger(__name__)

POINTS = 4  # grid points per width axis (interpolated in between)
TIMING = {"rounds": 3, "warmup_s": 0.05, "min_iters": 5, "min_time_s": 0.15}
FIT_TIMING = {"rounds": 4, "warmup_s": 0.2, "min_iters": 10, "min_time_s": 0.6}


def default_cache_dir() -> Path:
    """``$OFB_CACHE/latency`` or ``~/.cache/ofb-deploy/latency``."""
    root = os.environ.get("OFB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ofb-deploy")
    return Path(root) / "latency"


def spread(values: list[int], points: int = POINTS) -> list[int]:
    """At most ``points`` of the ascending ``values``, evenly spread, first and last included."""
    if len(values) <= points:
        return list(values)
    picks = np.linspace(0, len(values) - 1, points).round().astype(int)
    return sorted({values[i] for i in picks})


def table_key(spec: ArchSpec, space: SpaceConfig, backend: str, precision: str, batch: int, threads: int) -> dict:
    """What a table's numbers depend on (its cache key)."""
    from ofb_deploy.engines.registry import backend_status
    from ofb_deploy.validate.latency import cpu_model

    arch = arch_key(spec)
    status = backend_status(backend)
    return {
        "arch": arch,
        "space": {
            "align": space.align,
            "embed_min": space.embed_min,
            "mlp_min": space.mlp_min,
            "mlp_steps": space.mlp_steps,
        },  # fmt: skip
        "backend": backend,
        "backend_version": status.version,
        "precision": precision,
        "batch": batch,
        "threads": threads,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def _time_group(paths: dict[str, Path], feed: dict[str, np.ndarray], backend: str, threads: int, timing: dict) -> dict:
    from ofb_deploy.engines.registry import make_runner
    from ofb_deploy.validate.interleaved import measure_interleaved

    runners = {label: make_runner(backend, path, threads=threads, name=label) for label, path in paths.items()}
    result = measure_interleaved(runners, feed, **timing)
    return {label: report.median_ms for label, report in result.reports.items()}


def _write(folder: Path, name: str, proto: bytes) -> Path:
    path = profile_graph(folder, name)
    path.write_bytes(proto)
    return path


def _identity_graph(num_tokens: int, embed: int) -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", num_tokens, embed])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", num_tokens, embed])
    graph = helper.make_graph([helper.make_node("Identity", [INPUT_NAME], ["out"])], "empty", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto.SerializeToString()


def _uniform(spec: ArchSpec, space: SpaceConfig, share: float) -> ArchSpec:
    """The candidate widths nearest ``share`` of the dense ones, in every block (a whole model for the fit)."""

    def near(cands: list, full: int) -> int:
        return min(cands, key=lambda c: abs(c - share * full))

    dims = sorted({d for _, d in attn_candidates(max(spec.num_heads), max(spec.head_dim), space)})
    return spec.replace(
        embed_dim=near(embed_candidates(spec.embed_dim, space), spec.embed_dim),
        num_heads=tuple(max(1, round(share * h)) for h in spec.num_heads),
        head_dim=tuple(near(dims, d) for d in spec.head_dim),
        mlp_hidden=tuple(near(mlp_candidates(m, space), m) for m in spec.mlp_hidden),
    )


def _fit(table: LatencyTable, spec: ArchSpec, space: SpaceConfig, folder: Path, backend: str, threads: int) -> None:
    """Time three whole models and fit ``scale``/``offset`` (least squares) of the summed prediction to them."""
    from ofb_deploy.export.onnx import export_onnx

    specs = {"dense": spec, "uniform50": _uniform(spec, space, 0.5), "uniform75": _uniform(spec, space, 0.75)}
    paths = {}
    for label, s in specs.items():
        paths[label] = profile_graph(folder, f"whole_{label}")
        export_onnx(OfbViT(s).eval(), paths[label])
    batch = table.key["batch"]
    feed = {INPUT_NAME: np.random.default_rng(0).standard_normal((batch, spec.in_chans, spec.img_size,
                                                                  spec.img_size), dtype=np.float32)}  # fmt: skip
    measured = _time_group(paths, feed, backend, threads, FIT_TIMING)
    raw = np.array([table.raw_ms(s) for s in specs.values()])
    real = np.array([measured[label] for label in specs])
    a = np.stack([raw, np.ones_like(raw)], axis=1)
    scale, offset = np.linalg.lstsq(a, real, rcond=None)[0]
    if scale <= 0:  # degenerate timings: fall back to a pure ratio
        scale, offset = float(real.sum() / raw.sum()), 0.0
    table.scale, table.offset = float(scale), float(offset)
    table.fit = [
        {"model": label, "arch": {"embed_dim": s.embed_dim, "num_heads": list(s.num_heads),
                                  "head_dim": list(s.head_dim), "mlp_hidden": list(s.mlp_hidden)},
         "measured_ms": float(m), "raw_ms": float(r)}
        for (label, s), m, r in zip(specs.items(), real, raw, strict=True)
    ]  # fmt: skip


def profile_model(
    spec: ArchSpec,
    *,
    backend: str = "ort-cpu",
    batch: int = 8,
    precision: str = "fp32",
    threads: int | None = None,
    space: SpaceConfig | None = None,
    cache_dir: Path | None = None,
    refresh: bool = False,
) -> LatencyTable:
    """The latency table of ``spec``'s search space on ``backend`` (read from the cache when its key matches).

    Args:
        spec: the dense model.
        backend: a backend that runs an ONNX file here (``ofb-deploy build --list``).
        batch: batch size the parts are timed at.
        precision: ``fp32`` (the parts are float32 graphs; other precisions need a QDQ/fp16 model and are refused).
        threads: CPU threads (``None``: every core this process may use).
        space: the candidate widths (default: the search's default space).
        cache_dir: where tables are cached (default ``default_cache_dir()``).
        refresh: measure again even when the cache has the table.
    """
    from ofb_deploy.engines.registry import require_backend
    from ofb_deploy.errors import ConfigError
    from ofb_deploy.utils.threads import cpu_threads

    check_profilable(spec)
    if precision != "fp32":
        raise ConfigError(f"profile: precision {precision!r} is not supported yet; profile fp32")
    if batch < 1:
        raise ConfigError(f"profile: batch must be >= 1, got {batch}")
    require_backend(backend, run=True)
    space = space or SpaceConfig()
    threads = cpu_threads(threads)
    key = table_key(spec, space, backend, precision, batch, threads)
    cache = latency_table_path(cache_dir or default_cache_dir(), spec.base_model, key_digest(key))
    if cache.is_file() and not refresh:
        table = LatencyTable.load(cache)
        if table.key == key:
            log.info("latency table from the cache: %s", cache)
            return table
    started = time.perf_counter()
    table = _measure(spec, space, key, backend, threads)
    table.profile_seconds = round(time.perf_counter() - started, 1)
    table.save(cache)
    return table


def _measure(spec: ArchSpec, space: SpaceConfig, key: dict[str, Any], backend: str, threads: int) -> LatencyTable:
    n, batch = spec.num_tokens, key["batch"]
    embeds = spread(embed_candidates(spec.embed_dim, space))
    dims = spread(sorted({d for _, d in attn_candidates(max(spec.num_heads), max(spec.head_dim), space)}))
    hiddens = spread(mlp_candidates(max(spec.mlp_hidden), space))
    heads = list(range(1, max(spec.num_heads) + 1))
    rng = np.random.default_rng(0)
    attn = {str(h): [[0.0] * len(dims) for _ in embeds] for h in heads}
    mlp = [[0.0] * len(hiddens) for _ in embeds]
    overheads = []
    with tempfile.TemporaryDirectory(prefix="ofb-profile-") as tmp, make_progress() as progress:
        folder = Path(tmp)
        task = progress.add_task("profile", total=len(embeds) + 2, info=f"{backend} batch {batch}")
        for i, e in enumerate(embeds):
            paths = {"empty": _write(folder, f"empty{e}", _identity_graph(n, e))}
            for h in heads:
                for d in dims:
                    paths[f"attn{h}x{d}"] = _write(folder, f"attn{e}_{h}x{d}", attn_graph(n, e, h, d))
            for m in hiddens:
                paths[f"mlp{m}"] = _write(folder, f"mlp{e}_{m}", mlp_graph(n, e, m))
            feed = {INPUT_NAME: rng.standard_normal((batch, n, e), dtype=np.float32)}
            ms = _time_group(paths, feed, backend, threads, TIMING)
            overheads.append(ms["empty"])
            for h in heads:
                for j, d in enumerate(dims):
                    attn[str(h)][i][j] = max(0.0, ms[f"attn{h}x{d}"] - ms["empty"])
            for j, m in enumerate(hiddens):
                mlp[i][j] = max(0.0, ms[f"mlp{m}"] - ms["empty"])
            progress.advance(task)
        overhead = float(np.median(overheads))
        paths = {f"fixed{e}": _write(folder, f"fixed{e}", fixed_graph(spec, e)) for e in embeds}
        image = rng.standard_normal((batch, spec.in_chans, spec.img_size, spec.img_size), dtype=np.float32)
        ms = _time_group(paths, {INPUT_NAME: image}, backend, threads, TIMING)
        fixed = [max(0.0, ms[f"fixed{e}"] - overhead) for e in embeds]
        progress.advance(task)
        table = LatencyTable(key, overhead, embeds, fixed, dims, attn, hiddens, mlp)
        _fit(table, spec, space, folder, backend, threads)
        progress.advance(task)
    return table
