"""Check this bundle's engine (or its ONNX under ONNX Runtime) on the golden validation images.

Written by `ofb-deploy bundle`; needs numpy plus `tensorrt`/`tensorrt_rtx` or `onnxruntime`, never ofb-deploy.
The golden images are real validation images with their labels; the reference outputs are ONNX Runtime's (CPU)
on the float32 model, computed where the bundle was written. The check passes when, against them:

* top-1 agreement with the reference is at least the precision's minimum,
* top-1 accuracy is at most the precision's allowance below what the same ONNX scored there (ONNX Runtime CPU),
* the max abs logit error is within the precision's tolerance (golden/golden.json holds all three).

Files are checked against manifest.json's sha256 first (--no-verify skips that). Any failure is one line on
stderr and a non-zero exit.

    python3 check.py [--backend tensorrt|ort-cpu|ort-cuda] [--engine engine/model.plan] [--no-verify]
"""

from __future__ import annotations

import argparse
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
    run_all,
    run_main,
    verify,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, default="tensorrt")
    parser.add_argument("--engine", type=Path, help="the engine (default: what build.sh wrote)")
    parser.add_argument("--mode", help="which build the engine is (default: its sidecar's, else the bundle's first)")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the bundle's files")
    return parser.parse_args()


def judge(logits: np.ndarray, golden: dict, expected: dict, tol: dict) -> tuple[dict, list[str]]:
    labels, reference = golden["labels"], golden["reference"]
    if logits.shape != reference.shape:
        raise BundleError(f"the model returned {list(logits.shape)} for {list(reference.shape)} expected")
    got = {
        "top1": 100.0 * float((logits.argmax(1) == labels).mean()),
        "top1_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
        "max_abs": float(np.abs(logits - reference).max()),
    }
    failures = []
    if got["top1_agreement"] < tol["min_top1_agreement"]:
        failures.append(f"top-1 agreement {got['top1_agreement']:.4f} < {tol['min_top1_agreement']}")
    if got["top1"] < expected["top1"] - tol["max_top1_drop"]:
        failures.append(f"top-1 {got['top1']:.2f}% < {expected['top1']:.2f}% - {tol['max_top1_drop']} points")
    if not got["max_abs"] <= tol["max_abs"]:  # NOTE: `not <=` also catches NaN
        failures.append(f"max abs error {got['max_abs']:.4g} > {tol['max_abs']:.4g}")
    return got, failures


def main() -> int:
    args = parse_args()
    manifest = load_manifest()
    plans = manifest["plans"]
    engine = args.engine or (bundle_path(manifest, "engine_dir") / "model.plan")
    mode = args.mode or (engine_mode(engine, manifest["default_mode"]) if args.backend == "tensorrt" else None)
    mode = mode or manifest["default_mode"]
    if mode not in plans:
        raise BundleError(f"--mode {mode!r}: this bundle's builds are {', '.join(plans)}")
    onnx_key = plans[mode]["check_onnx"]
    onnx = bundle_path(manifest, onnx_key)
    keys = ["golden_inputs", "golden_labels", "golden_reference", "golden_meta"]
    if not args.no_verify:
        verify(manifest, [bundle_path(manifest, k) for k in keys] + ([onnx] if args.backend != "tensorrt" else []))
    golden = load_golden(manifest)
    runner = make_runner(args.backend, manifest, onnx, engine)
    logits = run_all(runner, golden["images"])
    meta = golden["meta"]
    got, failures = judge(logits, golden, meta["measured"][onnx_key], meta["tolerances"])
    where = f"{runner.description}, {mode}" if args.backend == "tensorrt" else f"{runner.description}, {onnx.name}"
    if failures:
        raise BundleError(f"check failed on {len(logits)} golden images ({where}): {'; '.join(failures)}")
    print(f"check passed on {len(logits)} golden images ({where}): top-1 {got['top1']:.2f}% "
          f"(here at bundling: {meta['measured'][onnx_key]['top1']:.2f}%), agreement {got['top1_agreement']:.4f}, "
          f"max abs {got['max_abs']:.3g} (tolerance {meta['tolerances']['max_abs']:.3g})")  # fmt: skip
    return 0


if __name__ == "__main__":
    run_main(main)
