"""GPU check: build, compare and time every GPU backend and precision on a run's dense and subnet models.

On a machine with an NVIDIA GPU (``make gpu-check``, after ``make run``; ``RUN_DIR=`` picks another run):

1. the fp16 and QDQ INT8 ONNX of both roles are exported when missing (with parity against PyTorch);
2. every backend that can run here except eager torch (``ort-cuda``, ``ort-trt``, ``tensorrt``,
   ``tensorrt-rtx``) is built at fp32, fp16 and int8 with ``build_run``, into the run's ``build/``;
3. each engine is compared with its role's PyTorch fp32 model on the validation images, judged by
   ``parity_tolerance`` for its backend, precision and TF32 setting (``validate.accuracy.evaluate_all``);
4. dense and subnet are timed interleaved at each batch exactly as ``ofb-deploy validate`` does
   (``validate.speed.time_all``), giving the speedup and speedup / FLOPs ratio;
5. an fp16 and an int8 deployment bundle of the subnet (``ofb-deploy bundle``) are written for the TensorRT on
   this machine (``bundle_target``: its version and CPU architecture pick the target; TensorRT-RTX: ``rtx``), and
   each bundle's own ``build.sh`` and ``check.py --backend tensorrt`` run here, as they would on a device.

The result goes to ``benchmarks/results/gpu.json`` (GPU model, driver, library versions, builds, parity,
latency). The run's validation results (``RunDir.validate_path``) are left alone. Without a GPU the script prints
one line saying why nothing ran and exits 0.

    .venv/bin/python benchmarks/gpu_check.py [--run-dir runs/default] [--batches 1,8,32] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ofb_deploy.errors import OfbError

HERE = Path(__file__).resolve().parent
log = logging.getLogger("gpu_check")


def ensure_onnx(run: Any) -> None:
    """Export the fp16 and QDQ INT8 ONNX of every exported role that lacks them."""
    from ofb_deploy.artifacts import ROLES
    from ofb_deploy.errors import ArtifactError
    from ofb_deploy.export.run import add_precision

    roles = [r for r in ROLES if run.onnx_path(r).is_file()]
    if roles != list(ROLES):
        raise ArtifactError(f"{run.export_dir} lacks the fp32 ONNX of {sorted(set(ROLES) - set(roles))}: `make run`")
    for role in roles:
        for precision in ("fp16", "int8"):
            if not run.onnx_path(role, precision).is_file():
                add_precision(run, role, precision)


def build_all(run: Any, backends: list[str], batches: tuple[int, ...]) -> dict[str, str]:
    """Build each backend at each precision; one failure is recorded and the rest go on."""
    from ofb_deploy.build import build_run
    from ofb_deploy.engines import PRECISIONS

    builds = {}
    for backend in backends:
        for precision in PRECISIONS:
            try:
                build_run(run, backend, precision, batches)
                builds[f"{backend}:{precision}"] = "ok"
            except OfbError as exc:
                log.warning("build %s %s failed: %s", backend, precision, exc)
                builds[f"{backend}:{precision}"] = str(exc)
    return builds


def judge(entries: list[dict[str, Any]]) -> None:
    """Add the tolerance and pass/fail of each engine's agreement with PyTorch (in place)."""
    from ofb_deploy.engines.sidecar import read_sidecar
    from ofb_deploy.onnxtools.parity import AccuracyReport, parity_tolerance

    for entry in entries:
        if "agreement" not in entry:
            continue
        tf32 = bool(read_sidecar(Path(entry["path"])).get("tf32"))
        tolerance = parity_tolerance(entry["backend"], entry["precision"], tf32)
        report = AccuracyReport.from_dict(entry["agreement"]).with_tolerances(**tolerance)
        entry["parity"] = {"tolerance": tolerance, "passed": report.passed, "failures": list(report.failures)}


def bundle_target(status: dict[str, Any]) -> tuple[str | None, str]:
    """The bundle target for the TensorRT that runs here, or ``None`` and why not."""
    import platform

    trt = status.get("tensorrt")
    if trt is not None and trt.can_run and trt.version:
        major, minor = (int(v) for v in trt.version.split(".")[:2])
        jetson = platform.machine() == "aarch64"
        if major == 8 and minor in (5, 6):
            return "jetson-jp5", ""
        if major == 10:
            return ("jetson-jp6" if minor < 13 else "jetson-jp7") if jetson else "x86-trt10", ""
        if major == 11:
            return "x86-trt11", ""
        return None, f"TensorRT {trt.version} is not a bundle target"
    rtx = status.get("tensorrt-rtx")
    if rtx is not None and rtx.can_run:
        return "rtx", ""
    return None, "neither tensorrt nor tensorrt-rtx can run here"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check_bundles(run_dir: Path, target: str, batches: tuple[int, ...]) -> dict[str, Any]:
    """Write fp16 and int8 bundles of the subnet for ``target``; run each bundle's build.sh and check.py here."""
    import os
    import subprocess
    import tempfile

    from ofb_deploy.bundle import BundleConfig, make_bundle

    results: dict[str, Any] = {}
    env = {**os.environ, "PYTHON": sys.executable}
    with tempfile.TemporaryDirectory(prefix="ofb-gpu-bundle-") as work:
        for precision in ("fp16", "int8"):
            out = Path(work) / precision
            entry: dict[str, Any] = {"target": target}
            try:
                doc = make_bundle(run_dir, out, BundleConfig(target, precision, batches))
                entry["top1_ort_cpu"] = doc["top1_ort_cpu"]
            except OfbError as exc:
                results[precision] = {**entry, "passed": False, "error": str(exc)}
                continue
            build = subprocess.run(["bash", str(out / "build.sh")], capture_output=True, text=True, env=env)
            entry["build"] = {"rc": build.returncode, "message": _last_line(build.stderr)}
            if build.returncode == 0:
                entry["sidecar"] = json.loads((out / "engine" / "model.plan.json").read_text())
                cmd = [sys.executable, str(out / "check.py"), "--backend", "tensorrt"]
                checked = subprocess.run(cmd, capture_output=True, text=True, env=env)
                entry["check"] = {"rc": checked.returncode, "message": _last_line(checked.stdout + checked.stderr)}
            entry["passed"] = build.returncode == 0 and entry["check"]["rc"] == 0
            log.info("bundle %s %s: %s", target, precision, entry.get("check", entry["build"])["message"])
            results[precision] = entry
    return results


def check(run_dir: Path, batches: tuple[int, ...], backends: list[str]) -> dict[str, Any]:
    """Build, compare and time ``backends`` on the run; the ``gpu.json`` document."""
    from ofb_deploy.artifacts import RunDir
    from ofb_deploy.utils.progress import make_progress
    from ofb_deploy.validate.accuracy import evaluate_all
    from ofb_deploy.validate.config import ValidateConfig
    from ofb_deploy.validate.speed import time_all
    from ofb_deploy.validate.validate import (
        describe_model,
        list_engines,
        runnable_engines,
        validation_reader,
    )

    run = RunDir(run_dir)
    ensure_onnx(run)
    builds = build_all(run, backends, batches)
    config = ValidateConfig(batches=batches, backends=tuple(backends))
    engines, skipped = runnable_engines(list_engines(run), config)
    reader = validation_reader(run, config)
    with make_progress() as progress:
        accuracy = evaluate_all(run, reader, engines, config, progress)
        latency = time_all(run, reader, engines, config, progress)
    judge(accuracy["engines"])
    ratio = describe_model(run, "dense")["flops"] / describe_model(run, "subnet")["flops"]
    for per_batch in latency.values():
        for entry in per_batch.values():
            if isinstance(entry, dict) and "speedup" in entry:
                entry["speedup_per_flops"] = entry["speedup"] / ratio
    return {"builds": builds, "engines": accuracy["engines"], "skipped_engines": skipped, "flops_ratio": ratio,
            "latency": latency, "config": config.to_dict()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/default"))
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gpu.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ofb_deploy.engines import list_backends
    from ofb_deploy.engines.registry import cuda_device_name
    from ofb_deploy.onnxtools.parity import GPU_BACKENDS
    from ofb_deploy.timing.latency import machine_info
    from ofb_deploy.utils.config import parse_batches
    from ofb_deploy.utils.io import atomic_write_json

    gpu = cuda_device_name()
    if gpu is None:
        log.info("gpu-check: no NVIDIA GPU visible (torch.cuda.is_available() is False); nothing built or timed")
        return 0
    status = {s.name: s for s in list_backends()}
    backends = [b for b in GPU_BACKENDS if status[b].can_run]
    if not backends:
        why = "; ".join(f"{b}: {status[b].reason}" for b in GPU_BACKENDS)
        log.info("gpu-check: %s has no GPU backend that can run (%s); nothing built or timed", gpu, why)
        return 0
    started = time.perf_counter()
    try:
        result = check(args.run_dir, parse_batches(args.batches), backends)
    except OfbError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    machine = machine_info()
    doc = {"schema_version": 1, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "run_dir": str(args.run_dir)}
    doc |= {"gpu": gpu, "driver": machine.get("gpu_driver"), "machine": machine}
    doc["libraries"] = {name: s.version for name, s in status.items()}
    doc["not_runnable"] = {b: status[b].reason for b in GPU_BACKENDS if b not in backends}
    target, why = bundle_target(status)
    bundles = check_bundles(args.run_dir, target, parse_batches(args.batches)) if target else {"skipped": why}
    doc |= result | {"bundles": bundles, "seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(args.out, doc)
    failed = [e["key"] + ":" + e["role"] for e in result["engines"] if not e.get("parity", {}).get("passed", False)]
    failed += [f"bundle {k}" for k, e in bundles.items() if isinstance(e, dict) and not e.get("passed", False)]
    log.info("gpu-check: %d engines, parity failed for %s -> %s", len(result["engines"]), failed or "none", args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
