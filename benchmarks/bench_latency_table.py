"""Latency-table benchmark: how well ``ofb-deploy profile`` predicts whole-model latency on ONNX Runtime CPU.

For DeiT-S and the default preset (random weights), profile the search space at batch 8, then draw 20 random
architectures of the space, export each as the pipeline does and time it (``measure_latency``, the timing of
``bench``), and compare with the table's prediction. Goal (issue 12): median relative error <= 10%, max <= 20%.
Writes ``benchmarks/results/latency_table.json`` with the profiling time and every (predicted, measured) pair.

    .venv/bin/python benchmarks/bench_latency_table.py [--models vit_fmnist_tiny] [--samples 20] [--batch 8]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.errors import OfbError
from ofb_deploy.models import get_arch_spec
from ofb_deploy.utils.io import atomic_write_json

HERE = Path(__file__).resolve().parent
MODELS = {"deit_small_patch16_224": {}, "vit_fmnist_tiny": {"num_classes": 10, "in_chans": 1}}


def random_spec(spec: Any, rng: random.Random) -> Any:
    """A random architecture of the default search space of ``spec``."""
    from ofb_deploy.search.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates

    space = SpaceConfig()
    attn = [rng.choice(attn_candidates(h, d, space)) for h, d in zip(spec.num_heads, spec.head_dim, strict=True)]
    return spec.replace(
        embed_dim=rng.choice(embed_candidates(spec.embed_dim, space)),
        num_heads=tuple(h for h, _ in attn),
        head_dim=tuple(d for _, d in attn),
        mlp_hidden=tuple(rng.choice(mlp_candidates(m, space)) for m in spec.mlp_hidden),
    )


def run_model(name: str, kwargs: dict, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from ofb_deploy.artifacts import profile_graph
    from ofb_deploy.engines import make_runner
    from ofb_deploy.export.onnx import export_onnx
    from ofb_deploy.models.vit import INPUT_NAME, OfbViT
    from ofb_deploy.profile.measure import profile_model
    from ofb_deploy.validate.latency import measure_latency

    spec = get_arch_spec(name, **kwargs)
    started = time.perf_counter()
    table = profile_model(spec, batch=args.batch, threads=args.threads, cache_dir=work / "cache", refresh=True)
    profile_s = time.perf_counter() - started
    rng = random.Random(0)
    feed = {INPUT_NAME: np.random.default_rng(0).standard_normal(
        (args.batch, spec.in_chans, spec.img_size, spec.img_size), dtype=np.float32)}  # fmt: skip
    rows = []
    for i in range(args.samples):
        sub = random_spec(spec, rng)
        path = profile_graph(work, f"{name}_{i}")
        export_onnx(OfbViT(sub).eval(), path)
        runner = make_runner("ort-cpu", path, threads=table.key["threads"])
        report = measure_latency(runner, feed, warmup_s=0.3, min_iters=10, min_time_s=args.min_time_s)
        predicted = table.predict(sub)
        rows.append({"embed_dim": sub.embed_dim, "num_heads": list(sub.num_heads), "head_dim": list(sub.head_dim),
                     "mlp_hidden": list(sub.mlp_hidden), "predicted_ms": predicted, "measured_ms": report.median_ms,
                     "error_pct": 100 * (predicted - report.median_ms) / report.median_ms})  # fmt: skip
        print(f"{name} {i}: predicted {predicted:.3f} ms, measured {report.median_ms:.3f} ms", flush=True)
    errors = np.abs([r["error_pct"] for r in rows])
    return {
        "model": name,
        "profile_seconds": round(profile_s, 1),
        "table_key": table.key,
        "median_abs_error_pct": round(float(np.median(errors)), 2),
        "max_abs_error_pct": round(float(errors.max()), 2),
        "goal": {"median_pct": 10, "max_pct": 20},
        "passed": bool(np.median(errors) <= 10 and errors.max() <= 20),
        "samples": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--min-time-s", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latency_table.json")
    args = parser.parse_args()
    try:
        results = []
        with tempfile.TemporaryDirectory(prefix="bench-table-") as tmp:
            for name in args.models.split(","):
                results.append(run_model(name, MODELS[name], args, Path(tmp)))
    except OfbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    atomic_write_json(args.out, {"schema_version": 1, "batch": args.batch, "results": results})
    for r in results:
        print(f"{r['model']}: profile {r['profile_seconds']} s, median error {r['median_abs_error_pct']}%, "
              f"max {r['max_abs_error_pct']}% -> {'PASS' if r['passed'] else 'FAIL'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
