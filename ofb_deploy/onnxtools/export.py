"""ONNX export of an ``OfbViT``: one file, dynamic batch, opset >= 17, checked; and float16 conversion.

Opset >= 17 keeps LayerNorm one ``LayerNormalization`` op (a decomposed LayerNorm overflows in FP16);
the batch axis is dynamic; ``onnx.checker`` and shape inference run on every file. We export with
``torch.onnx.export(dynamo=True)``: it is the exporter torch >= 2.9 maintains (the TorchScript one is deprecated),
and here it gives the cleaner graph (about half the nodes of the TorchScript export of the same ViT, no runtime
``Shape -> Sqrt`` chain for the attention scale, no ``Where`` from SDPA's mask logic) at opset 17 after its
built-in version conversion; ``external_data=False`` keeps the weights inside the one file. Models near 2 GB
(protobuf's limit) are refused with a clear line rather than written as split files.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.models.io import INPUT_NAME, OUTPUT_NAME
from ofb_deploy.utils.io import atomic_path

log = logging.getLogger(__name__)

MIN_OPSET = 17  # LayerNormalization is one op from opset 17 (a decomposed LayerNorm overflows in FP16)
MAX_BYTES = 2_000_000_000  # protobuf's 2 GiB limit, with margin: a single-file ONNX must stay below it
# NOTE: kept in float32 by the fp16 conversion: LayerNorm (variance overflows in fp16) and Softmax (exp range)
FP16_KEEP_FLOAT32 = ("LayerNormalization", "Softmax")


def _export_to(model: Any, path: Path, opset: int, example: Any) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about its own internals, not about our model
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise ArtifactError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def export_onnx(
    model: Any,
    path: str | Path,
    *,
    opset: int = MIN_OPSET,
    batch: int = 2,
) -> dict[str, Any]:
    """Export ``model`` (an ``OfbViT`` in eval mode) to one ONNX file and check it.

    Args:
        model: the model; it is exported on the CPU in fp32 with input ``input`` and output ``logits``.
        path: destination ``.onnx`` (written atomically; nothing is left behind on failure).
        opset: ONNX opset, at least 17.
        batch: batch size of the example input (the exported batch axis is dynamic either way).

    Returns:
        ``check_onnx``'s summary of the written file.
    """
    import torch

    if opset < MIN_OPSET:
        raise ConfigError(f"opset must be >= {MIN_OPSET} (LayerNormalization is one op only from 17), got {opset}")
    spec = model.spec
    n_params = sum(p.numel() for p in model.parameters())
    if 4 * n_params >= MAX_BYTES:
        raise ConfigError(f"model has {n_params} parameters (~{4 * n_params / 1e9:.1f} GB): too big for one ONNX file")
    model = model.float().cpu().eval()
    example = torch.randn(batch, spec.in_chans, spec.img_size, spec.img_size)
    path = Path(path)
    # NOTE: the exporter logs every optimizer rewrite at INFO and warns that it converts its native opset 18
    # down to 17; both are noise for users, and check_onnx verifies the opset and graph afterwards
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with atomic_path(path) as tmp:
            try:
                _export_to(model, tmp, opset, example)
            except ArtifactError:
                raise
            except Exception as exc:  # the exporter raises many types; all mean the graph could not be captured
                raise ArtifactError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
            info = check_onnx(tmp)
            if info["opset"] != opset:
                raise ArtifactError(f"the exporter wrote opset {info['opset']}, not the requested {opset}")
    finally:
        logging.disable(previous)
    log.debug("exported %s (%d nodes, opset %d)", path, info["nodes"], info["opset"])
    return info


def check_onnx(path: str | Path, *, require_layernorm: bool = True) -> dict[str, Any]:
    """Run ``onnx.checker`` (full check) and shape inference on a single-file ONNX; summarise it.

    Args:
        path: the file.
        require_layernorm: fail unless LayerNorm is exported as ``LayerNormalization`` ops (opset >= 17).

    Returns:
        ``{"opset", "nodes", "ops": {op: count}, "layernorm_ops", "inputs", "outputs", "bytes"}`` where
        inputs/outputs map names to ``{"shape": [...], "dtype": ...}`` (dynamic dims by name).
    """
    import onnx

    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if size == 0:
        raise ArtifactError(f"ONNX file missing or empty: {path}")
    if size >= MAX_BYTES:
        raise ArtifactError(f"{path} is {size / 1e9:.2f} GB: a single-file ONNX must stay under 2 GB")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            raise ArtifactError(f"{path} uses external data; ofb-deploy writes single-file ONNX only")
        onnx.checker.check_model(proto, full_check=True)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except ArtifactError:
        raise
    except Exception as exc:  # onnx raises ValidationError, InferenceError, DecodeError ... for one cause
        raise ArtifactError(f"invalid ONNX {path}: {str(exc).splitlines()[0]}") from exc
    ops = Counter(node.op_type for node in proto.graph.node)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if require_layernorm and ops.get("LayerNormalization", 0) == 0:
        raise ArtifactError(f"{path}: LayerNorm was decomposed (no LayerNormalization op); export with opset >= 17")
    return {
        "opset": opset,
        "nodes": len(proto.graph.node),
        "ops": dict(sorted(ops.items())),
        "layernorm_ops": ops.get("LayerNormalization", 0),
        "inputs": {v.name: _value_info(v) for v in proto.graph.input},
        "outputs": {v.name: _value_info(v) for v in proto.graph.output},
        "bytes": size,
    }


def _value_info(value: Any) -> dict[str, Any]:
    import onnx

    tensor = value.type.tensor_type
    dims = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
    return {"shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name}


def convert_fp16(
    src: str | Path,
    dst: str | Path,
    *,
    keep_nodes: tuple[str, ...] = (),
    require_layernorm: bool = True,
) -> dict[str, Any]:
    """Write a float16 copy of ``src`` keeping LayerNorm, Softmax and the inputs/outputs in float32.

    This is what strongly typed TensorRT 11 / TensorRT-RTX build an FP16 engine from. Casts are
    inserted around the kept ops; weights feeding them stay float32.

    Args:
        src: the float32 ONNX.
        dst: destination (written atomically).
        keep_nodes: names of further nodes kept in float32 (a LayerNorm decomposed into primitive ops).
        require_layernorm: ``check_onnx``'s check that LayerNorm is one op (off for a decomposed LayerNorm).
    """
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    proto = onnx.load(str(src))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_KEEP_FLOAT32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about values clamped to the fp16 range, which is the intent
        half = convert_float_to_float16(
            proto, keep_io_types=True, op_block_list=block, node_block_list=list(keep_nodes), disable_shape_infer=False
        )
    _toposort(half.graph)
    # NOTE: stale float32 value_info from the exporter contradicts the new float16 types; re-infer instead
    del half.graph.value_info[:]
    with atomic_path(dst) as tmp:
        onnx.save(half, str(tmp))
        info = check_onnx(tmp, require_layernorm=require_layernorm)
    return info


def _toposort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node follows its producers (ORT's converter appends the input casts)."""
    ready = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ArtifactError(f"graph has a cycle or a dangling input near node {rest[0].name!r}")
        for node in done:
            ready.update(node.output)
        ordered.extend(done)
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
