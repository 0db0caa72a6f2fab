"""Time this bundle's engine (or its ONNX under ONNX Runtime) per batch size, with percentiles.

Written by `ofb-deploy bundle`; needs numpy plus `tensorrt`/`tensorrt_rtx` or `onnxruntime`, never ofb-deploy.
Inputs are the golden validation images, repeated up to the batch. Each batch size is warmed up for --warmup
seconds, then timed for at least --iters runs and --seconds seconds. TensorRT times the GPU work with CUDA events
(no host-device copies inside); ONNX Runtime times `session.run`. Prints min, mean, median, p90, p95, p99, max (ms)
and throughput; --json FILE also writes them.

    python3 run.py [--backend tensorrt|ort-cpu|ort-cuda] [--batch 1,8] [--seconds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bundle_runtime import (
    BACKENDS,
    BundleError,
    bundle_path,
    engine_mode,
    load_golden,
    load_manifest,
    make_runner,
    run_main,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, default="tensorrt")
    parser.add_argument("--engine", type=Path, help="the engine (default: what build.sh wrote)")
    parser.add_argument("--batch", default="", help="comma-separated batch sizes (default: the bundle's)")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per batch size")
    parser.add_argument("--seconds", type=float, default=3.0, help="fewest timed seconds per batch size")
    parser.add_argument("--iters", type=int, default=20, help="fewest timed runs per batch size")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def stats(times_ms: list[float], batch: int) -> dict[str, float]:
    t = np.asarray(times_ms)
    out = {"iters": len(t), "min": t.min(), "mean": t.mean(), "median": np.median(t), "p90": np.percentile(t, 90),
           "p95": np.percentile(t, 95), "p99": np.percentile(t, 99), "max": t.max()}  # fmt: skip
    out = {k: (v if k == "iters" else round(float(v), 4)) for k, v in out.items()}
    out["throughput"] = round(1e3 * batch / out["median"], 1)
    return out


def time_batch(runner: object, images: np.ndarray, batch: int, args: argparse.Namespace) -> dict[str, float]:
    reps = -(-batch // len(images))
    x = np.ascontiguousarray(np.concatenate([images] * reps)[:batch])
    if hasattr(runner, "bind"):
        runner.bind(x)  # NOTE: TensorRT: inputs copied once; the timed runs exclude host-device copies
    else:
        runner.infer(x)
    end = time.perf_counter() + args.warmup
    while time.perf_counter() < end:
        runner.time_once(x)
    times: list[float] = []
    end = time.perf_counter() + args.seconds
    while len(times) < args.iters or time.perf_counter() < end:
        times.append(runner.time_once(x))
    return stats(times, batch)


def main() -> int:
    args = parse_args()
    manifest = load_manifest()
    engine = args.engine or (bundle_path(manifest, "engine_dir") / "model.plan")
    mode = engine_mode(engine, manifest["default_mode"]) if args.backend == "tensorrt" else manifest["default_mode"]
    onnx = bundle_path(manifest, manifest["plans"][mode]["check_onnx"])
    try:
        batches = [int(b) for b in (args.batch or ",".join(str(b) for b in manifest["batches"])).split(",")]
    except ValueError as exc:
        raise BundleError(f"--batch must be comma-separated integers, got {args.batch!r}") from exc
    images = load_golden(manifest)["images"]
    runner = make_runner(args.backend, manifest, onnx, engine)
    results = {}
    for batch in batches:
        if not runner.min_batch <= batch <= runner.max_batch:
            raise BundleError(f"batch {batch} is outside the engine's profile {runner.min_batch}..{runner.max_batch}")
        results[str(batch)] = r = time_batch(runner, images, batch, args)
        print(f"batch {batch:>4}: median {r['median']:.3f} ms  p90 {r['p90']:.3f}  p95 {r['p95']:.3f}  "
              f"p99 {r['p99']:.3f}  min {r['min']:.3f}  max {r['max']:.3f}  ({r['iters']} runs, "
              f"{r['throughput']:.1f} img/s)")  # fmt: skip
    doc = {"backend": args.backend, "runtime": runner.description, "mode": mode, "latency_ms": results}
    if args.json is not None:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
