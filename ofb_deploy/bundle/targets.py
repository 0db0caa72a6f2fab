"""The devices a bundle is written for: TensorRT version, the ONNX form it parses, precisions, and how to spell them.

An engine is tied to the TensorRT version and the GPU, and cannot be built on a host for a Jetson (TensorRT issues
1879, 1810), so what ships is the ONNX in the form the device's TensorRT parses plus a build script. The table
below is the JetPack/TensorRT table of DEPLOY.md:

* ``jetson-jp5`` (JetPack 5.1, TensorRT 8.5.2): no ``LayerNormalization`` importer before 8.6, so LayerNorm is
  decomposed into primitive ops at opset 16; ModelOpt's QDQ (opset >= 19) is not for it.
* ``jetson-jp6`` (6.1/6.2, TensorRT 10.3), ``jetson-jp7`` (7.0/7.1 Thor, 10.13), ``x86-trt10``: opset 17
  ``LayerNormalization``; precision flags exist (``--fp16``, ``--int8``, ``--calib``), implicit INT8 is deprecated
  from 10.1 but still there, so these bundles carry both a QDQ ONNX and a calibration cache.
* ``x86-trt11`` (TensorRT 11; JetPack 7.2.2 has 11.4.1 too) and ``rtx`` (TensorRT-RTX): strongly typed, the
  precision is in the ONNX (float16 tensors, Q/DQ); no precision flags, no calibrators.

``triton`` and ``deepstream`` are layouts added to any target: ``--target jetson-jp6,triton,deepstream``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ofb_deploy.choices import BundleLayout, BundleTarget, Precision
from ofb_deploy.errors import ConfigError


@dataclass(frozen=True)
class TargetSpec:
    """One bundle target.

    Args:
        name: the ``BundleTarget`` value.
        library: ``tensorrt`` or ``tensorrt_rtx``.
        trt: the TensorRT version the target names (the calibration cache's default header).
        accepts: lowest and highest ``(major, minor)`` ``build.sh`` builds with.
        opset: ONNX opset of the files.
        decomposed_layernorm: LayerNorm as primitive ops (TensorRT 8.5 has no ``LayerNormalization`` importer).
        strongly_typed: precision only in the ONNX (TensorRT 11, TensorRT-RTX).
        calib_cache: ship a calibration cache for implicit INT8 (TensorRT 8.x/10).
        modelopt: ModelOpt's QDQ parses here (opset >= 19).
        device: where it runs (JetPack, GPU), for ``--list`` and the README.
    """

    name: str
    library: str
    trt: str
    accepts: tuple[tuple[int, int], tuple[int, int]]
    opset: int
    decomposed_layernorm: bool
    strongly_typed: bool
    calib_cache: bool
    modelopt: bool
    device: str

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions a bundle of this target can be written at."""
        return (Precision.FP16.value, Precision.INT8.value)

    @property
    def onnx_form(self) -> str:
        """What ``--list`` says about the ONNX."""
        ln = "LayerNorm decomposed" if self.decomposed_layernorm else "LayerNormalization op"
        typing = "float16 / Q/DQ in the ONNX" if self.strongly_typed else "fp32 + precision flags, or Q/DQ"
        return f"opset {self.opset}, {ln}, {typing}"

    @property
    def int8_forms(self) -> str:
        """What an int8 bundle of this target holds."""
        qdq = "Q/DQ ONNX (ModelOpt, else ORT)" if self.modelopt else "Q/DQ ONNX (ORT)"
        return qdq + (" + calibration cache" if self.calib_cache else "")


TARGETS: dict[str, TargetSpec] = {
    t.name: t
    for t in (
        TargetSpec("jetson-jp5", "tensorrt", "8.5.2", ((8, 5), (8, 6)), 16, True, False, True, False,
                   "JetPack 5.1.x (Orin/Xavier, CUDA 11.4, Python 3.8)"),
        TargetSpec("jetson-jp6", "tensorrt", "10.3.0", ((10, 0), (10, 12)), 17, False, False, True, True,
                   "JetPack 6.1/6.2 (Orin, CUDA 12.6, Python 3.10)"),
        TargetSpec("jetson-jp7", "tensorrt", "10.13.0", ((10, 13), (10, 99)), 17, False, False, True, True,
                   "JetPack 7.0/7.1 (Thor, CUDA 13.0, Python 3.12)"),
        TargetSpec("x86-trt10", "tensorrt", "10.3.0", ((10, 0), (10, 99)), 17, False, False, True, True,
                   "x86-64 with an NVIDIA GPU, TensorRT 10.x"),
        TargetSpec("x86-trt11", "tensorrt", "11.0.0", ((11, 0), (11, 99)), 17, False, True, False, True,
                   "TensorRT 11.x (x86-64; also JetPack 7.2.2's 11.4.1)"),
        TargetSpec("rtx", "tensorrt_rtx", "1.7", ((1, 0), (1, 99)), 17, False, True, False, True,
                   "GeForce/RTX PRO GPUs (Turing..Blackwell) with TensorRT-RTX"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class TargetChoice:
    """A parsed ``--target``: the device target and the serving layouts added to it."""

    target: TargetSpec
    layouts: tuple[str, ...]

    @property
    def spelling(self) -> str:
        """The ``--target`` value that gives this choice."""
        return ",".join((self.target.name, *self.layouts))


def parse_target(value: str) -> TargetChoice:
    """``jetson-jp6,triton,deepstream`` -> the target and its layouts; one line for anything else.

    Args:
        value: one device target, then any of ``triton`` and ``deepstream``, comma-separated.
    """
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    targets = [n for n in names if n in BundleTarget.values()]
    layouts = [n for n in names if n in BundleLayout.values()]
    unknown = [n for n in names if n not in targets and n not in layouts]
    allowed = f"one of {', '.join(BundleTarget.values())}, plus any of {', '.join(BundleLayout.values())}"
    if unknown:
        raise ConfigError(f"--target {value!r}: unknown {', '.join(unknown)}; give {allowed}")
    if len(targets) != 1:
        raise ConfigError(f"--target {value!r} names {len(targets)} device targets; give {allowed}")
    if len(set(layouts)) != len(layouts):
        raise ConfigError(f"--target {value!r} names a layout twice")
    order = BundleLayout.values()
    return TargetChoice(TARGETS[targets[0]], tuple(sorted(layouts, key=order.index)))


def target_table() -> list[dict[str, str]]:
    """One row per target and layout, for ``bundle --list`` and the bundle README."""
    rows = [
        {
            "target": t.name,
            "tensorrt": ("TensorRT-RTX " if t.library == "tensorrt_rtx" else "TensorRT ") + t.trt,
            "device": t.device,
            "onnx": t.onnx_form,
            "precisions": ", ".join(t.precisions),
            "int8": t.int8_forms,
        }
        for t in TARGETS.values()
    ]
    for name, where, files in (
        ("triton", "Triton Inference Server", "triton/<model>/config.pbtxt + 1/"),
        ("deepstream", "DeepStream nvinfer", "deepstream/config_infer.txt + labels.txt"),
    ):
        rows.append({"target": name, "tensorrt": "(layout, with a target)", "device": where, "onnx": files,
                     "precisions": "the target's", "int8": ""})  # fmt: skip
    return rows
