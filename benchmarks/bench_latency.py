"""Latency benchmark: dense vs a ~50%-FLOPs subnet on ONNX Runtime CPU, interleaved in one process.

Cases (random weights: latency does not depend on the values):

* ``deit_s_half``: DeiT-S (4.6 GMACs) sliced to the hand-written widths in ``benchmarks/deit_s_half.json`` with
  ``ofb_deploy.slicing.slice_handwritten`` (what ``ofb-deploy slice --arch`` runs), a model where matmuls dominate.
  Target (issue 6): >= 1.8x faster than dense DeiT-S at batch 8.
* ``fmnist_tiny_half``: ``vit_fmnist_tiny`` uniformly narrowed to 50% MACs, the small model of the default run,
  where LayerNorm, softmax and reshapes keep more of the time.
* ``swin_t_half``: Swin-T (4.5 GMACs) sliced to the hand-written widths in ``benchmarks/swin_t_half.json`` (stage
  widths kept, a third of the heads, MLP to 54%: 49% of the MACs), with window partitions, shifts and patch
  mergings around the matmuls. Target (issue 13): >= 1.6x faster than dense Swin-T at batch 8.

Each case exports both models to ONNX and times them with ``ofb_deploy.validate.bench.bench`` (the code behind
``ofb-deploy bench SUBNET --baseline DENSE``). Results go to ``benchmarks/results/latency.json``.

    .venv/bin/python benchmarks/bench_latency.py [--cases deit_s_half] [--batches 1,8] [--min-time-s 3]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from ofb_deploy.errors import OfbError
from ofb_deploy.models import count_macs, create_model, save_model_dir
from ofb_deploy.utils.io import atomic_write_json

HERE = Path(__file__).resolve().parent
log = logging.getLogger("bench_latency")


def _uniform_half(model: str) -> dict[str, Any]:
    """Widths of a uniform cut: half the heads and half the MLP of every block, same embedding width."""
    from ofb_deploy.models import get_arch_spec

    spec = get_arch_spec(model)
    blocks = [{"heads": max(1, h // 2), "head_dim": d, "mlp_hidden": m // 2} for h, d, m in
              zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True)]  # fmt: skip
    return {"embed_dim": spec.embed_dim, "blocks": blocks}


CASES: dict[str, dict[str, Any]] = {
    "deit_s_half": {"model": "deit_small_patch16_224", "arch": HERE / "deit_s_half.json", "target": {"8": 1.8}},
    "fmnist_tiny_half": {"model": "vit_fmnist_tiny", "arch": None, "num_classes": 10, "in_chans": 1},
    "swin_t_half": {"model": "swin_tiny_patch4_window7_224", "arch": HERE / "swin_t_half.json", "target": {"8": 1.6}},
}


def run_case(name: str, case: dict[str, Any], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Make dense and subnet model folders and ONNX files, then time them interleaved."""
    from ofb_deploy.artifacts import model_onnx
    from ofb_deploy.onnxtools.export import export_onnx
    from ofb_deploy.slicing import load_subnet, slice_handwritten
    from ofb_deploy.validate.bench import bench

    dense = create_model(case["model"], num_classes=case.get("num_classes"), in_chans=case.get("in_chans"))
    dense_dir, sub_dir = work / name / "dense", work / name / "subnet"
    save_model_dir(dense, dense_dir)
    arch = case["arch"]
    if arch is None:
        arch = work / name / "widths_half.json"
        atomic_write_json(arch, _uniform_half(case["model"]))
    summary = slice_handwritten(arch, dense_dir, sub_dir)
    dense_onnx, sub_onnx = model_onnx(dense_dir, "model"), model_onnx(sub_dir, "subnet")
    export_onnx(dense.eval(), dense_onnx)
    export_onnx(load_subnet(sub_dir), sub_onnx)
    doc = bench(sub_onnx, backend="ort-cpu", batches=args.batches, baseline=dense_onnx,
                threads=args.threads, warmup_s=args.warmup_s, min_iters=args.min_iters, min_time_s=args.min_time_s,
                rounds=args.rounds)  # fmt: skip
    dense_macs = count_macs(dense.spec).total
    out = {
        "model": case["model"],
        "arch_file": str(arch.relative_to(HERE.parent)) if arch.is_relative_to(HERE.parent) else str(arch),
        "dense_flops": dense_macs,
        "subnet_flops": summary["flops"],
        "flops_ratio": summary["flops"] / dense_macs,
        "speedup": {b: r["speedup"] for b, r in doc["results"].items()},
        "pooled_speedup": {b: r["pooled_speedup"] for b, r in doc["results"].items()},
        "dense_p50_ms": {b: r["baseline"]["p50_ms"] for b, r in doc["results"].items()},
        "subnet_p50_ms": {b: r["p50_ms"] for b, r in doc["results"].items()},
        "results": doc["results"],
        "runner": doc["runner"],
    }
    if "target" in case:
        out["target_speedup"] = case["target"]
        out["target_met"] = all(out["speedup"].get(b, 0) >= v for b, v in case["target"].items())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's)")
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--min-iters", type=int, default=10)
    parser.add_argument("--min-time-s", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latency.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ofb_deploy.timing.latency import machine_info
    from ofb_deploy.utils.config import parse_batches

    try:
        args.batches = parse_batches(args.batches)
        names = [n.strip() for n in args.cases.split(",") if n.strip()]
        unknown = [n for n in names if n not in CASES]
        if unknown:
            parser.error(f"unknown case(s) {unknown}; cases: {', '.join(CASES)}")
        results = {}
        with tempfile.TemporaryDirectory(prefix="ofb-bench-latency-") as tmp:
            for name in names:
                results[name] = run_case(name, CASES[name], Path(tmp), args)
                log.info("%s: FLOPs %.1f%%, speedup %s", name, 100 * results[name]["flops_ratio"],
                         {b: round(v, 2) for b, v in results[name]["speedup"].items()})  # fmt: skip
    except OfbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    doc = {"schema_version": 1, "backend": "ort-cpu", "timing": vars(args) | {"out": str(args.out)}}
    doc |= {"machine": machine_info(), "cases": results}
    atomic_write_json(args.out, doc)
    log.info("results -> %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
