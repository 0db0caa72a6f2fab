"""Build a TensorRT (8.5 / 10 / 11) or TensorRT-RTX engine from an ONNX file: the fallback of build.sh.

Written by `ofb-deploy bundle`; needs only the `tensorrt` or `tensorrt_rtx` Python module (no ofb-deploy, no
numpy). It makes the same build as the trtexec command build.sh prints: an explicit-batch network (strongly typed
when asked), one optimization profile over the batch, a workspace limit, a timing cache, and the FP16/INT8 flags
where this TensorRT has them (8.x/10; 11 and TensorRT-RTX take the precision from the ONNX). Implicit INT8 reads
the calibration cache build.sh stamped with this TensorRT's version; no calibration runs here.

    python3 build_engine.py --library tensorrt --onnx net.onnx --engine model.plan --profile 1,8,8 [--fp16]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path


class BuildError(Exception):
    """A build that cannot go on; main() prints it as one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=("tensorrt", "tensorrt_rtx"), default="tensorrt")
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--engine", type=Path, required=True)
    parser.add_argument("--profile", required=True, help="min,opt,max batch")
    parser.add_argument("--workspace-mib", type=int, default=1024)
    parser.add_argument("--timing-cache", type=Path)
    parser.add_argument("--strongly-typed", action="store_true")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--calib", type=Path, help="calibration cache (implicit INT8)")
    parser.add_argument("--fp32-layers", type=Path, help="file of 'layer:fp32,...' pinned to FP32")
    parser.add_argument("--compute-capability", default="", help="TensorRT-RTX targets, e.g. sm89,sm120 or current")
    return parser.parse_args(argv)


def make_network(trt, builder, logger, args):
    major = int(trt.__version__.split(".")[0])
    flags = 0
    names = trt.NetworkDefinitionCreationFlag
    if args.library == "tensorrt" and major < 10 and hasattr(names, "EXPLICIT_BATCH"):
        flags |= 1 << int(names.EXPLICIT_BATCH)  # NOTE: the ONNX parser needs explicit batch before 10
    if args.strongly_typed and hasattr(names, "STRONGLY_TYPED"):
        flags |= 1 << int(names.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(args.onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"{args.library} {trt.__version__} cannot parse {args.onnx}: {errors or 'unknown error'}")
    return network, parser


def make_profile(builder, network, batches):
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = list(tensor.shape)[1:]
        profile.set_shape(tensor.name, *[[b, *rest] for b in batches])
    return profile


def cache_calibrator(trt, cache: bytes):
    """An entropy calibrator that only hands TensorRT the cache (a valid cache means no calibration batches)."""

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list) -> None:
            return None  # NOTE: reached only when TensorRT rejects the cache; nothing to calibrate with here

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, data: object) -> None:
            return None

    return CacheCalibrator()


def set_precision(trt, builder, network, config, args, batches) -> None:
    if args.fp16 or args.int8:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise BuildError(f"{args.library} {trt.__version__} has no FP16/INT8 flags (strongly typed): "
                             "this bundle's target is an older TensorRT")  # fmt: skip
        config.set_flag(trt.BuilderFlag.FP16)
    if args.int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if args.calib is not None:
        config.int8_calibrator = cache_calibrator(trt, args.calib.read_bytes())
        opt = batches[1]
        config.set_calibration_profile(make_profile(builder, network, (opt, opt, opt)))
    if args.fp32_layers is not None:
        pinned = {item.rsplit(":", 1)[0] for item in args.fp32_layers.read_text().strip().split(",") if item}
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.name in pinned:
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)


def set_rtx_targets(trt, config, network, requested: str) -> list[str]:
    """TensorRT-RTX builds on the CPU for the compute capabilities it is told (every one it knows by default)."""
    known = sorted((n for n in trt.ComputeCapability.__members__ if n.startswith("SM")), key=lambda n: int(n[2:]))
    names = [n.strip().upper() for n in requested.split(",") if n.strip()]
    if not names:
        fp32_matmul = any(
            network.get_layer(i).type == trt.LayerType.MATRIX_MULTIPLY
            and network.get_layer(i).get_input(0).dtype == trt.DataType.FLOAT
            for i in range(network.num_layers)
        )  # NOTE: TensorRT-RTX has no float32 GEMM on Turing (SM75)
        names = [n for n in known if not (n == "SM75" and fp32_matmul)]
    bad = [n for n in names if n not in known and n != "CURRENT"]
    if bad:
        raise BuildError(f"unknown compute capability {bad}; TensorRT-RTX {trt.__version__} knows {known}")
    config.num_compute_capabilities = len(names)
    for i, name in enumerate(names):
        config.set_compute_capability(getattr(trt.ComputeCapability, name), i)
    return names


def build(args: argparse.Namespace) -> None:
    try:
        trt = importlib.import_module(args.library)
    except Exception as exc:  # ImportError, or OSError for a missing libnvinfer: both mean not usable
        raise BuildError(f"cannot import {args.library} ({type(exc).__name__}: {exc})") from exc
    batches = tuple(int(b) for b in args.profile.split(","))
    if len(batches) != 3 or not 0 < batches[0] <= batches[1] <= batches[2]:
        raise BuildError(f"--profile must be min,opt,max with min <= opt <= max, got {args.profile}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = make_network(trt, builder, logger, args)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, args.workspace_mib << 20)
    config.add_optimization_profile(make_profile(builder, network, batches))
    set_precision(trt, builder, network, config, args, batches)
    cpu_only = False
    if args.library == "tensorrt_rtx":
        cpu_only = "CURRENT" not in set_rtx_targets(trt, config, network, args.compute_capability)
    cache = None
    if args.timing_cache is not None and not cpu_only:  # NOTE: a CPU-only TensorRT-RTX build times no kernels
        blob = args.timing_cache.read_bytes() if args.timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"{args.library} {trt.__version__} failed to build an engine from {args.onnx} (see above)")
    args.engine.parent.mkdir(parents=True, exist_ok=True)
    args.engine.write_bytes(bytes(serialized))
    if cache is not None:  # NOTE: written aside and renamed, so a killed build leaves no half-written cache
        tmp = args.timing_cache.with_name(args.timing_cache.name + ".tmp")
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
        os.replace(tmp, args.timing_cache)
    print(f"built {args.engine} with {args.library} {trt.__version__}")


def main(argv: list[str] | None = None) -> int:
    try:
        build(parse_args(argv))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
