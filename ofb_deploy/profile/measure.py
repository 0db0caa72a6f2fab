"""``profile_model``: measure a ``LatencyTable`` for a model's search space on one backend (``ofb-deploy profile``).

Grid: up to ``POINTS`` embed widths, head dims and MLP widths spread over the search space's candidates (its ends
included), every head count. The parts (``graphs.py``), an empty graph per input shape (the per-run call
overhead), and ``3 + FIT_RANDOM`` whole models (dense, two uniform shrinks and seeded random subnets, exported as
the pipeline exports them) are all timed in ONE interleaved group, in alternating rounds in one process, as
``validate`` and ``bench`` time models (``validate.interleaved``: warm-up by time, medians). An affine correction
of the parts' sum is then fitted on the whole models by least squares.

NOTE: one group, not a group per embed width followed by the whole models: on a shared CPU the machine's speed
drifts by 10-30% within a minute (measured here: one model's 15-s medians went 4.5 -> 6.8 ms at 2 threads), so
parts and wholes timed at different moments fitted a correction of up to 1.7x that was really drift; in one
group every graph samples the same moments.

A table is cached under its key's digest (model, space, backend, precision, batch, threads, machine, library
versions), so asking again with the same key reads it instead of measuring.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.artifacts import latency_table_path, profile_graph
from ofb_deploy.engines.registry import backend_status, make_runner, require_backend
from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.io import INPUT_NAME
from ofb_deploy.models.space import (
    SpaceConfig,
    attn_candidates,
    embed_candidates,
    mlp_candidates,
    random_subnet,
)
from ofb_deploy.models.vit import OfbViT
from ofb_deploy.onnxtools.export import export_onnx
from ofb_deploy.profile.graphs import attn_graph, fixed_graph, mlp_graph
from ofb_deploy.profile.table import LatencyTable, arch_key, check_profilable, key_digest
from ofb_deploy.timing.config import PROFILE_BATCH, PROFILE_TIMING
from ofb_deploy.timing.interleaved import measure_interleaved
from ofb_deploy.timing.latency import cpu_model
from ofb_deploy.utils.progress import make_progress
from ofb_deploy.utils.threads import cpu_threads

log = logging.getLogger(__name__)

POINTS = 4  # grid points per width axis (interpolated in between)
# every part and whole model is timed in one interleaved group: four slices each, >= 8 runs and 0.4 s in all
FIT_RANDOM = 3  # random subnets among the whole models of the fit (next to dense and two uniform shrinks)
FIT_SEED = 1234
# in the cache key, so a table measured by an earlier method (keys without it: parts and whole models timed
# apart) is measured again instead of read from the cache
PROFILE_METHOD = 2


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
        "method": PROFILE_METHOD,
        "precision": precision,
        "batch": batch,
        "threads": threads,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }


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


def fit_specs(spec: ArchSpec, space: SpaceConfig) -> dict[str, ArchSpec]:
    """The whole models a table's correction is fitted on: dense, two uniform shrinks and ``FIT_RANDOM`` random
    subnets (seeded, so every profile of a space fits on the same ones)."""
    specs = {"dense": spec, "uniform50": _uniform(spec, space, 0.5), "uniform75": _uniform(spec, space, 0.75)}
    rng = random.Random(FIT_SEED)
    specs |= {f"random{i}": random_subnet(spec, space, rng) for i in range(FIT_RANDOM)}
    return specs


def _fit(table: LatencyTable, specs: dict[str, ArchSpec], measured: dict[str, float]) -> None:
    """Least-squares ``scale``/``offset`` of the parts' sum against the whole models timed with the parts."""
    raw = np.array([table.raw_ms(s) for s in specs.values()])
    real = np.array([measured[f"whole_{label}"] for label in specs])
    a = np.stack([raw, np.ones_like(raw)], axis=1)
    scale, offset = np.linalg.lstsq(a, real, rcond=None)[0]
    if scale <= 0:  # degenerate timings: fall back to a pure ratio
        scale, offset = float(real.sum() / raw.sum()), 0.0
    table.scale, table.offset = float(scale), float(offset)
    table.fit = [
        {"model": label, "arch": {"embed_dim": s.embed_dim, "num_heads": list(s.num_heads),
                                  "head_dim": list(s.head_dim), "mlp_hidden": list(s.mlp_hidden)},
         "measured_ms": float(m), "raw_ms": float(r), "predicted_ms": float(scale * r + offset)}
        for (label, s), m, r in zip(specs.items(), real, raw, strict=True)
    ]  # fmt: skip


def profile_model(
    spec: ArchSpec,
    *,
    backend: str = "ort-cpu",
    batch: int = PROFILE_BATCH,
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


def _part_graphs(spec: ArchSpec, space: SpaceConfig, folder: Path) -> tuple[dict[str, tuple[Path, int]], dict]:
    """Every part graph of the grid, written to ``folder``: label to (path, embed width of its token input, or 0
    for an image input), and the grid's axes."""
    n = spec.num_tokens
    axes = {
        "embeds": spread(embed_candidates(spec.embed_dim, space)),
        "dims": spread(sorted({d for _, d in attn_candidates(max(spec.num_heads), max(spec.head_dim), space)})),
        "hiddens": spread(mlp_candidates(max(spec.mlp_hidden), space)),
        "heads": list(range(1, max(spec.num_heads) + 1)),
    }
    graphs = {}
    for e in axes["embeds"]:
        graphs[f"empty{e}"] = (_write(folder, f"empty{e}", _identity_graph(n, e)), e)
        for h in axes["heads"]:
            for d in axes["dims"]:
                graphs[f"attn{e}_{h}x{d}"] = (_write(folder, f"attn{e}_{h}x{d}", attn_graph(n, e, h, d)), e)
        for m in axes["hiddens"]:
            graphs[f"mlp{e}_{m}"] = (_write(folder, f"mlp{e}_{m}", mlp_graph(n, e, m)), e)
        graphs[f"fixed{e}"] = (_write(folder, f"fixed{e}", fixed_graph(spec, e)), 0)
    return graphs, axes


def _feeds(spec: ArchSpec, graphs: dict[str, tuple[Path, int]], batch: int) -> dict[str, dict[str, np.ndarray]]:
    """A random batch per graph: tokens (batch, N, E) for a block part at embed E, images for the rest."""
    rng = np.random.default_rng(0)
    image = rng.standard_normal((batch, spec.in_chans, spec.img_size, spec.img_size), dtype=np.float32)
    tokens = {e: rng.standard_normal((batch, spec.num_tokens, e), dtype=np.float32) for e in {e for _, e in
              graphs.values() if e}}  # fmt: skip
    return {label: {INPUT_NAME: tokens[e] if e else image} for label, (_, e) in graphs.items()}


def _measure(spec: ArchSpec, space: SpaceConfig, key: dict[str, Any], backend: str, threads: int) -> LatencyTable:
    specs = fit_specs(spec, space)
    with tempfile.TemporaryDirectory(prefix="ofb-profile-") as tmp, make_progress() as progress:
        folder = Path(tmp)
        task = progress.add_task("profile", total=len(specs) + 1 + PROFILE_TIMING.rounds, info="writing the parts")
        graphs, axes = _part_graphs(spec, space, folder)
        progress.advance(task)
        for label, s in specs.items():
            progress.update(task, info=f"exporting whole model {label}")
            graphs[f"whole_{label}"] = (profile_graph(folder, f"whole_{label}"), 0)
            export_onnx(OfbViT(s).eval(), graphs[f"whole_{label}"][0])
            progress.advance(task)
        progress.update(task, info=f"timing {len(graphs)} graphs on {backend}, batch {key['batch']}")
        runners = {label: make_runner(backend, path, threads=threads, name=label) for label, (path, _) in
                   graphs.items()}  # fmt: skip
        result = measure_interleaved(runners, _feeds(spec, graphs, key["batch"]), **PROFILE_TIMING.measure_kwargs(),
                                     on_round=lambda _: progress.advance(task))  # fmt: skip
    ms = {label: report.median_ms for label, report in result.reports.items()}
    return _table(spec, specs, key, axes, ms)


def _table(spec: ArchSpec, specs: dict[str, ArchSpec], key: dict, axes: dict, ms: dict[str, float]) -> LatencyTable:
    """The table from the medians: each part net of its input shape's empty-graph time, then the fit."""
    embeds, dims, hiddens, heads = axes["embeds"], axes["dims"], axes["hiddens"], axes["heads"]
    empty = {e: ms[f"empty{e}"] for e in embeds}
    overhead = float(np.median(list(empty.values())))
    attn = {str(h): [[max(0.0, ms[f"attn{e}_{h}x{d}"] - empty[e]) for d in dims] for e in embeds] for h in heads}
    mlp = [[max(0.0, ms[f"mlp{e}_{m}"] - empty[e]) for m in hiddens] for e in embeds]
    fixed = [max(0.0, ms[f"fixed{e}"] - overhead) for e in embeds]
    table = LatencyTable(key, overhead, embeds, fixed, dims, attn, hiddens, mlp)
    _fit(table, specs, ms)
    return table
