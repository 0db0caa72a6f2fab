"""INT8 quantizers compared on ONNX Runtime CPU: ORT static quantization vs NVIDIA ModelOpt's ONNX PTQ.

For one model (a run's subnet or dense model, or a model folder) this exports the float32 ONNX, writes the QDQ ONNX
with each quantizer from the same calibration images (``export.run.quantize_int8``: ``ort``; ``modelopt`` with its
unquantized layers kept float32, as for TensorRT 10 weak typing, and stored float16, as the bundles for strongly
typed TensorRT 11 / TensorRT-RTX use), and measures each on ONNX Runtime CPU over the whole validation set: top-1,
and top-1 agreement with the float32 ONNX. Result: ``benchmarks/results/int8_quantizers.json`` (the INT8 table of
docs/results.md).

    .venv/bin/python benchmarks/int8_quantizers.py [--run-dir runs/default | --model-dir DIR] [--role subnet]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ofb_deploy.errors import OfbError

HERE = Path(__file__).resolve().parent
log = logging.getLogger("int8_quantizers")
VARIANTS = (("ort", "ort", "fp32"), ("modelopt", "modelopt", "fp32"), ("modelopt-fp16", "modelopt", "fp16"))


def measure(model_dir: Path, data: object, val_size: int | None) -> dict:
    """Top-1 and agreement with fp32 of each quantizer's QDQ ONNX, on ORT CPU over the validation set."""
    from ofb_deploy.bundle.golden import golden_images, ort_logits
    from ofb_deploy.calibrate import CalibrationSource
    from ofb_deploy.export.run import quantize_int8
    from ofb_deploy.models.checkpoint import load_model_dir
    from ofb_deploy.onnxtools.export import export_onnx

    model = load_model_dir(model_dir).eval()
    spec = model.spec
    images, labels = golden_images(data, spec, val_size or 10**9)
    source = CalibrationSource.from_data(data, spec, num_images=data.calib_size, seed=data.seed)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="ofb-int8-") as work:
        fp32 = Path(work) / "fp32.onnx"
        export_onnx(model, fp32)
        reference = ort_logits(fp32, images)
        rows["fp32"] = {"top1": round(100 * float((reference.argmax(1) == labels).mean()), 2), "agreement": 1.0}
        for name, quantizer, high in VARIANTS:
            out = Path(work) / f"{name}.int8.onnx"
            started = time.perf_counter()
            info = quantize_int8(fp32, out, source, quantizer, high_precision=high)
            logits = ort_logits(out, images)
            rows[name] = {
                "top1": round(100 * float((logits.argmax(1) == labels).mean()), 2),
                "agreement": round(float((logits.argmax(1) == reference.argmax(1)).mean()), 4),
                "max_abs": round(float(np.abs(logits - reference).max()), 4),
                "qdq_nodes": info["quantization"]["qdq_nodes"],
                "opset": info["opset"],
                "bytes": out.stat().st_size,
                "seconds": round(time.perf_counter() - started, 1),
            }
            log.info("%s: %s", name, rows[name])
    return {"val_images": int(len(images)), "calib_images": int(len(source)), "quantizers": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="a run directory (its --role model)")
    parser.add_argument("--model-dir", type=Path, help="a model folder instead of a run")
    parser.add_argument("--role", default="subnet")
    parser.add_argument("--val-size", type=int, default=None, help="validation images (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "int8_quantizers.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ofb_deploy.artifacts import RunDir
    from ofb_deploy.data import model_data, run_data
    from ofb_deploy.utils.io import atomic_write_json

    try:
        if args.model_dir is not None:
            model_dir, data, source = args.model_dir, model_data(args.model_dir), str(args.model_dir)
        else:
            run = RunDir(args.run_dir or Path("runs/default"))
            model_dir, data, source = run.model_dir(args.role), run_data(run), f"{run.root} ({args.role})"
        result = measure(model_dir, data, args.val_size)
    except OfbError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    doc = {"schema_version": 1, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": source, **result}
    atomic_write_json(args.out, doc)
    log.info("int8 quantizers -> %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
