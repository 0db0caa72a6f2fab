"""The ONNX files of a bundle, in the form its target's TensorRT parses, each parity-checked against PyTorch here.

* float32: ``export_onnx`` at opset 17 (one ``LayerNormalization`` op); for TensorRT 8.5 (no importer for it before
  8.6) every ``LayerNormalization`` is rewritten into ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div/Mul/Add and the
  file is declared opset 16. Nothing else in the exported graph changed between opsets 16 and 17 (17 added
  ``LayerNormalization``, ``SequenceMap`` and the DFT/window ops), which ``onnx.checker`` confirms at opset 16.
* float16: ``convert_fp16`` (LayerNorm, Softmax and I/O kept float32; for the decomposed LayerNorm its nodes).
* INT8: a Q/DQ ONNX from ModelOpt (TensorRT >= 10: opset 19) or ONNX Runtime (every target), and for TensorRT
  8.x/10 a calibration cache for implicit INT8 (``calibrate.trt_cache``).

Every file is compared with eager PyTorch on real validation images (``export.run.ParityChecker``, the
tolerances of ``ofb-deploy export``); one over tolerance fails the bundle and nothing is written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ofb_deploy.bundle.targets import TargetSpec
from ofb_deploy.calibrate.modelopt import modelopt_version
from ofb_deploy.calibrate.trt_cache import tensor_ranges, write_trt_calib_cache
from ofb_deploy.choices import Precision, Quantizer
from ofb_deploy.errors import ArtifactError, BackendUnavailableError, ConfigError
from ofb_deploy.export.run import quantize_int8
from ofb_deploy.onnxtools.export import check_onnx, convert_fp16, export_onnx

log = logging.getLogger(__name__)

DECOMPOSED_OPSET = 16


def decompose_layernorm(src: Path, dst: Path, opset: int = DECOMPOSED_OPSET) -> tuple[str, ...]:
    """Rewrite every ``LayerNormalization`` of ``src`` into primitive ops, declare ``opset``; the new nodes' names.

    ``y = (x - mean) / sqrt(mean((x - mean)^2) + eps) * scale + bias`` over the last axis, the form TensorRT 8.5
    imports. Only the first output (``Y``) may be used; ``axis`` must be the last axis.

    Args:
        src: an ONNX with ``LayerNormalization`` ops (opset 17).
        dst: destination.
        opset: opset the rewritten file declares (< 17).
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(src))
    graph, nodes, kept = proto.graph, [], []
    for node in graph.node:
        if node.op_type != "LayerNormalization":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("axis", -1) != -1 or any(o for o in node.output[1:]):
            raise ArtifactError(f"LayerNormalization {node.name!r}: only axis -1 with one output can be decomposed")
        name = node.name or f"ln{len(kept)}"
        eps = f"{name}/eps"
        graph.initializer.append(numpy_helper.from_array(np.array(attrs.get("epsilon", 1e-5), np.float32), eps))
        x, scale = node.input[0], node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        steps = [
            ("ReduceMean", [x], "mean", {"axes": [-1], "keepdims": 1}),
            ("Sub", [x, "mean"], "centered", {}),
            ("Mul", ["centered", "centered"], "squared", {}),
            ("ReduceMean", ["squared"], "var", {"axes": [-1], "keepdims": 1}),
            ("Add", ["var", eps], "var_eps", {}),
            ("Sqrt", ["var_eps"], "std", {}),
            ("Div", ["centered", "std"], "normed", {}),
            ("Mul", ["normed", scale], "scaled" if bias else node.output[0], {}),
        ] + ([("Add", ["scaled", bias], node.output[0], {})] if bias else [])
        local = {s[2] for s in steps[:-1]}
        for op, inputs, output, extra in steps:
            ins = [f"{name}/{i}" if i in local else i for i in inputs]
            out = output if output == node.output[0] else f"{name}/{output}"
            nodes.append(helper.make_node(op, ins, [out], name=f"{name}/{op}_{output}", **extra))
            kept.append(f"{name}/{op}_{output}")
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    onnx.save(proto, str(dst))
    check_onnx(dst, require_layernorm=False)
    return tuple(kept)


def resolve_quantizer(target: TargetSpec, quantizer: str) -> str:
    """``auto`` -> ModelOpt where the target parses its opset-19 Q/DQ and ModelOpt is installed, else ORT.

    Args:
        target: the bundle's target.
        quantizer: ``auto``, ``ort`` or ``modelopt``.
    """
    if quantizer == "auto":
        if not target.modelopt:
            return Quantizer.ORT.value

        try:
            modelopt_version()
        except BackendUnavailableError as exc:
            log.warning("INT8 with ONNX Runtime's quantizer: %s", exc)
            return Quantizer.ORT.value
        return Quantizer.MODELOPT.value
    if Quantizer(quantizer) is Quantizer.MODELOPT:
        if not target.modelopt:
            raise ConfigError(
                f"--quantizer modelopt writes opset 19, which TensorRT {target.trt} ({target.name}) does not parse; "
                "use --quantizer ort"
            )

        modelopt_version()
    return quantizer


def make_forms(
    model: Any,
    target: TargetSpec,
    precision: str,
    quantizer: str,
    work: Path,
    parity: Any,
    calibration: Any,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Write the target's ONNX files into ``work`` and parity-check each; return what was made.

    Args:
        model: the fp32 model (eager PyTorch).
        target: the bundle's target.
        precision: ``fp16`` or ``int8``.
        quantizer: ``ort`` or ``modelopt`` (resolved: ``resolve_quantizer``).
        work: scratch folder.
        parity: a ``ParityChecker`` for the model.
        calibration: a zero-argument function giving the ``CalibrationSource`` (int8 only).
        cache_dir: where calibration results are cached.

    Returns:
        ``{"paths": {key: Path}, "onnx": {key: summary with parity}, "fp32_layers": names, "int8": record}``.
    """
    paths = {"onnx": work / "fp32.onnx"}
    info = export_onnx(model, paths["onnx"], opset=17)
    kept: tuple[str, ...] = ()
    if target.decomposed_layernorm:
        decomposed = work / "fp32_decomposed.onnx"
        kept = decompose_layernorm(paths["onnx"], decomposed)
        paths["onnx"] = decomposed
        info = check_onnx(decomposed, require_layernorm=False)
    summaries = {"onnx": {**_brief(info), "parity": parity.check(paths["onnx"], "fp32", f"{target.name} fp32")}}
    result: dict[str, Any] = {"paths": paths, "onnx": summaries, "fp32_layers": kept, "int8": None}
    if precision == Precision.FP16:
        paths["onnx_fp16"] = work / "fp16.onnx"
        info = convert_fp16(paths["onnx"], paths["onnx_fp16"], keep_nodes=kept, require_layernorm=not kept)
        summaries["onnx_fp16"] = {**_brief(info), "parity": parity.check(paths["onnx_fp16"], "fp16", target.name)}
        return result

    source = calibration()
    high = "fp16" if quantizer == Quantizer.MODELOPT else "fp32"
    paths["onnx_int8"] = work / "int8.onnx"
    info = quantize_int8(paths["onnx"], paths["onnx_int8"], source, quantizer, cache_dir, high, not kept)
    summaries["onnx_int8"] = {**_brief(info), "parity": parity.check(paths["onnx_int8"], "int8", target.name)}
    result["int8"] = {**info["quantization"], "high_precision": high}
    if target.calib_cache:
        paths["calib_cache"] = work / "calib.cache"
        ranges = tensor_ranges(paths["onnx"], source)
        write_trt_calib_cache(paths["calib_cache"], ranges, target.trt)
        result["calib_tensors"] = len(ranges)
    return result


def _brief(info: dict[str, Any]) -> dict[str, Any]:
    keep = ("opset", "nodes", "layernorm_ops", "inputs", "outputs")
    return {k: info[k] for k in keep if k in info}
