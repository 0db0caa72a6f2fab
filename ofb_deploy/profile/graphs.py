"""Small ONNX graphs of one ViT part at given widths, for the latency table (``profile.py``).

Exporting a torch module through ``torch.onnx.export(dynamo=True)`` takes seconds per graph; a table needs
dozens, so the parts are written directly with ``onnx.helper``, op for op as the exporter writes our ``OfbViT``
(``export/onnx.py``: LayerNormalization, MatMul + Add for each linear layer, Reshape/Transpose for the heads,
Mul by the fourth root of the scale on q and k, Softmax, the erf form of GELU, residual Adds). ONNX Runtime then
applies the same graph fusions to them as to the exported model. The batch axis is dynamic; weights are random
initialisers of the right shapes (latency does not depend on their values).

Parts:

* ``attn``: ``x + proj(attention(LN(x)))`` on tokens (B, N, E) with H heads of dim D;
* ``mlp``: ``x + fc2(GELU(fc1(LN(x))))`` with hidden width M;
* ``fixed``: the rest of the model at embed width E: patch embedding, class token and position embedding,
  final LayerNorm and the classifier on the class token.
"""

from __future__ import annotations

import math

import numpy as np

from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.io import INPUT_NAME, OUTPUT_NAME
from ofb_deploy.models.vit import LN_EPS

OPSET = 17


def _rng_init(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array((rng.standard_normal(shape) * 0.02).astype(np.float32), name)


def _const(name: str, values: list[int] | list[float], dtype: type = np.int64) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


class _Builder:
    """Accumulates nodes and initialisers with unique names."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[object] = []
        self.inits: list[object] = []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def weight(self, shape: tuple[int, ...]) -> str:
        name = self.name("w")
        self.inits.append(_rng_init(self.rng, name, shape))
        return name

    def const(self, values: list, dtype: type = np.int64) -> str:
        name = self.name("c")
        self.inits.append(_const(name, values, dtype))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: object) -> str:
        from onnx import helper

        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def layer_norm(self, x: str, width: int) -> str:
        return self.op("LayerNormalization", [x, self.weight((width,)), self.weight((width,))], axis=-1,
                       epsilon=LN_EPS)  # fmt: skip

    def linear(self, x: str, fan_in: int, fan_out: int) -> str:
        return self.op("Add", [self.op("MatMul", [x, self.weight((fan_in, fan_out))]), self.weight((fan_out,))])

    def model(self, inputs: list[object], output: str, out_info: object) -> bytes:
        from onnx import helper

        graph = helper.make_graph(self.nodes, "part", inputs, [out_info], initializer=self.inits)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        proto.ir_version = 8
        return proto.SerializeToString()


def _tokens(name: str, n: int, e: int) -> object:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", n, e])


def attn_graph(num_tokens: int, embed: int, heads: int, head_dim: int) -> bytes:
    """``x + proj(attention(LN(x)))`` at the given widths, serialised ONNX."""
    b = _Builder()
    width = heads * head_dim
    h = b.layer_norm(INPUT_NAME, embed)
    qkv = b.linear(h, embed, 3 * width)
    qkv = b.op("Reshape", [qkv, b.const([0, num_tokens, 3, heads, head_dim])])
    qkv = b.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])
    q, k, v = (b.op("Squeeze", [b.op("Gather", [qkv, b.const([i])], axis=0), b.const([0])]) for i in range(3))
    scale = b.const([head_dim**-0.25], np.float32)  # the exporter splits 1/sqrt(d) between q and k
    q = b.op("Mul", [q, scale])
    k = b.op("Mul", [b.op("Transpose", [k], perm=[0, 1, 3, 2]), scale])
    probs = b.op("Softmax", [b.op("MatMul", [q, k])], axis=-1)
    out = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    out = b.op("Reshape", [out, b.const([0, num_tokens, width])])
    out = b.op("Add", [INPUT_NAME, b.linear(out, width, embed)])
    return b.model([_tokens(INPUT_NAME, num_tokens, embed)], out, _tokens(out, num_tokens, embed))


def mlp_graph(num_tokens: int, embed: int, hidden: int) -> bytes:
    """``x + fc2(GELU(fc1(LN(x))))`` at the given widths, serialised ONNX (GELU in its erf form)."""
    b = _Builder()
    h = b.linear(b.layer_norm(INPUT_NAME, embed), embed, hidden)
    erf = b.op("Erf", [b.op("Div", [h, b.const([math.sqrt(2.0)], np.float32)])])
    gelu = b.op("Mul", [b.op("Mul", [h, b.const([0.5], np.float32)]), b.op("Add", [erf, b.const([1.0], np.float32)])])
    out = b.op("Add", [INPUT_NAME, b.linear(gelu, hidden, embed)])
    return b.model([_tokens(INPUT_NAME, num_tokens, embed)], out, _tokens(out, num_tokens, embed))


def fixed_graph(spec: ArchSpec, embed: int) -> bytes:
    """Patch embedding, class token, position embedding, final LayerNorm and classifier at width ``embed``.

    The blocks in between are left out; the class token goes straight from the embedding to the head.
    """
    from onnx import TensorProto, helper

    b = _Builder()
    p, c, n = spec.patch_size, spec.in_chans, spec.num_tokens
    conv = b.op("Conv", [INPUT_NAME, b.weight((embed, c, p, p)), b.weight((embed,))], kernel_shape=[p, p],
                strides=[p, p])  # fmt: skip
    tokens = b.op("Transpose", [b.op("Reshape", [conv, b.const([0, embed, -1])])], perm=[0, 2, 1])
    shape = b.op("Concat", [b.op("Shape", [INPUT_NAME], end=1), b.const([1, embed])], axis=0)
    cls = b.op("Expand", [b.weight((1, 1, embed)), shape])
    x = b.op("Add", [b.op("Concat", [cls, tokens], axis=1), b.weight((1, n, embed))])
    first = b.op("Squeeze", [b.op("Gather", [b.layer_norm(x, embed), b.const([0])], axis=1), b.const([1])])
    logits = b.linear(first, embed, spec.num_classes)
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", c, spec.img_size, spec.img_size])
    b.nodes.append(helper.make_node("Identity", [logits], [OUTPUT_NAME]))
    out = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", spec.num_classes])
    return b.model([image], OUTPUT_NAME, out)
