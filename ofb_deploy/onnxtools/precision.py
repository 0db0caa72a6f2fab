"""The precision an ONNX file carries, and the check that a build's ``--precision`` matches it.

Strongly typed builders (TensorRT 11, TensorRT-RTX) take every tensor's type from the ONNX, and
ONNX Runtime runs the graph it is given, so a precision flag cannot change what the file holds: an fp32 ONNX
built "as int8" gives an fp32 engine labelled int8. What the file holds is read from the graph itself:

* QuantizeLinear / DequantizeLinear nodes: an explicitly quantized (QDQ) INT8 graph;
* float16 initializers, value infos or ``Cast(to=FLOAT16)`` nodes: a float16 graph (our fp16 export keeps
  LayerNorm, Softmax and the I/O in float32, so its I/O alone says nothing);
* neither: fp32.

TensorRT 10 is weakly typed: fp16 and int8 are builder flags on the fp32 ONNX, and int8 needs an entropy
calibrator or QDQ nodes; without either TensorRT 10 silently builds fp16/fp32 kernels and the label lies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ofb_deploy.errors import ArtifactError, ConfigError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


@dataclass(frozen=True)
class OnnxPrecision:
    """What an ONNX graph holds.

    Args:
        qdq_nodes: QuantizeLinear plus DequantizeLinear nodes.
        float16_tensors: float16 initializers and value infos plus ``Cast`` nodes to float16.
    """

    qdq_nodes: int
    float16_tensors: int

    @property
    def precision(self) -> str:
        """``int8`` (QDQ), ``fp16`` (float16 tensors, no QDQ) or ``fp32``."""
        if self.qdq_nodes:
            return "int8"
        return "fp16" if self.float16_tensors else "fp32"

    def describe(self) -> str:
        """A few words for error messages."""
        return f"{self.qdq_nodes} Q/DQ nodes, {self.float16_tensors} float16 tensors"


def inspect_onnx_precision(path: Path) -> OnnxPrecision:
    """Count the QDQ nodes and float16 tensors of an ONNX file (weights are not loaded).

    Args:
        path: the ONNX file.
    """
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # DecodeError, OSError ...: all mean the file is not a readable ONNX
        raise ArtifactError(f"cannot read ONNX {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    qdq = sum(node.op_type in QDQ_OPS for node in graph.node)
    fp16 = sum(t.data_type == _FLOAT16 for t in graph.initializer)
    values = [*graph.value_info, *graph.input, *graph.output]
    fp16 += sum(v.type.tensor_type.elem_type == _FLOAT16 for v in values)
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == _FLOAT16 for a in node.attribute):
            fp16 += 1
    return OnnxPrecision(qdq_nodes=qdq, float16_tensors=fp16)


def check_build_precision(
    onnx_path: Path,
    precision: str,
    backend: str,
    weakly_typed: bool = False,
    calibrated: bool = False,
) -> OnnxPrecision:
    """Refuse, with one line, a build whose ``precision`` is not what the engine would really run.

    Args:
        onnx_path: the ONNX the build starts from.
        precision: the requested ``fp32``, ``fp16`` or ``int8``.
        backend: backend name, for the message.
        weakly_typed: TensorRT 10 (precision from builder flags on an fp32 ONNX).
        calibrated: a TensorRT 10 INT8 calibrator is attached to the build.

    Returns:
        The ONNX's ``OnnxPrecision`` (recorded in the sidecar).
    """
    found = inspect_onnx_precision(Path(onnx_path))
    name = Path(onnx_path).name
    if weakly_typed:
        if found.precision == "fp16" or (found.precision == "int8" and precision != "int8"):
            raise ConfigError(
                f"{name} is an {found.precision} ONNX ({found.describe()}): TensorRT 10 builds {precision} from the "
                "fp32 ONNX plus builder flags"
            )
        if precision == "int8" and found.precision != "int8" and not calibrated:
            raise ConfigError(
                f"TensorRT 10 INT8 from {name} needs a calibrator or QDQ nodes; without them it silently builds "
                "fp16 kernels: pass calibration images or build from the QDQ ONNX (`ofb-deploy export RUN --int8`)"
            )
        return found
    if found.precision != precision:
        hint = {"int8": "the QDQ ONNX (`ofb-deploy export RUN --int8`)", "fp16": "the float16 ONNX (`--fp16`)"}
        raise ConfigError(
            f"{name} is an {found.precision} ONNX ({found.describe()}); {backend} takes its precision from the ONNX, "
            f"so --precision {precision} needs {hint.get(precision, 'the fp32 ONNX')}"
        )
    return found
