"""Every closed set of choices ofb-deploy offers, as ``Enum``s: one spelling for the CLI, configs and code.

Typer lists an ``Enum`` option's values in ``--help`` and rejects anything else with one line; the config
models (``ofb_deploy.utils.config``) validate against the same classes. Members are ``str`` subclasses, so
``Backend.ORT_CPU == "ort-cpu"`` and JSON writes the value. This module imports nothing of ofb-deploy, so any
layer may use it.
"""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A ``str`` enum that prints as its value (``f"{Backend.ORT_CPU}"`` is ``ort-cpu`` on every Python)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """Every value, in declaration order."""
        return tuple(str(m.value) for m in cls)


class Backend(Choice):
    """Inference backends: eager PyTorch (the reference), ONNX Runtime providers, TensorRT and TensorRT-RTX."""

    TORCH = "torch"
    ORT_CPU = "ort-cpu"
    ORT_CUDA = "ort-cuda"
    ORT_TRT = "ort-trt"
    TENSORRT = "tensorrt"
    TENSORRT_RTX = "tensorrt-rtx"


class BuildBackend(Choice):
    """Backends ``build`` makes engines for (every backend but eager PyTorch)."""

    ORT_CPU = "ort-cpu"
    ORT_CUDA = "ort-cuda"
    ORT_TRT = "ort-trt"
    TENSORRT = "tensorrt"
    TENSORRT_RTX = "tensorrt-rtx"


class Precision(Choice):
    """Numeric precision of an ONNX file or engine."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Stage(Choice):
    """Pipeline stages, in the order ``ofb-deploy run`` chains them."""

    TRAIN = "train"
    SEARCH = "search"
    SLICE = "slice"
    FINETUNE = "finetune"
    EXPORT = "export"
    BUILD = "build"
    VALIDATE = "validate"
    REPORT = "report"


class Preset(Choice):
    """Embedded pipeline configs (``ofb_deploy/configs/<name>.yaml``)."""

    DEFAULT = "default"
    QUICK = "quick"


class Role(Choice):
    """The two models of a run: the dense model and the (sliced, fine-tuned) subnet."""

    DENSE = "dense"
    SUBNET = "subnet"


class ScoreInit(Choice):
    """Initial importance scores of the search: the authors' TruncNormal(0, 0.2), or ranked like weight L2."""

    RANDOM = "random"
    MAGNITUDE = "magnitude"


class AlphaInit(Choice):
    """Initial architecture logits: all zero (the authors'), or tilted by width so the expected cost starts at the
    target (the budget term then starts neutral instead of pushing every module wider or narrower at once)."""

    ZERO = "zero"
    TARGET = "target"


class ChooseBy(Choice):
    """How the search's joint choice ranks combinations in the budget's band: measured held-out loss, or log p."""

    LOSS = "loss"
    LOGP = "logp"


class FitMode(Choice):
    """How a data set's images are fitted to the model input: by size (``auto``), zero padding or resizing."""

    AUTO = "auto"
    PAD = "pad"
    RESIZE = "resize"


class Method(Choice):
    """Methods ``ofb-deploy compare`` runs at equal MACs (``ofb-latency``: equal latency) and equal epochs."""

    OFB = "ofb"
    UNIFORM_KEEP_EMBED = "uniform-keep-embed"  # uniform widths with the dense embed (an informed prior)
    UNIFORM = "uniform"  # every width, embed included, cut by one ratio
    TORCH_PRUNING = "torch-pruning"
    SCRATCH = "scratch"
    TORCH_PRUNING_TAYLOR = "torch-pruning-taylor"  # on request only (not in the default compare)
    OFB_LATENCY = "ofb-latency"  # on request: OFB searched at the OFB subnet's measured latency (not its MACs)


class Quantizer(Choice):
    """Who writes the QDQ INT8 ONNX: ONNX Runtime static quantization, or NVIDIA TensorRT Model Optimizer's ONNX PTQ."""

    ORT = "ort"
    MODELOPT = "modelopt"


class BundleTarget(Choice):
    """Devices ``ofb-deploy bundle`` writes a folder for: a TensorRT version and the ONNX form it parses."""

    JETSON_JP5 = "jetson-jp5"
    JETSON_JP6 = "jetson-jp6"
    JETSON_JP7 = "jetson-jp7"
    X86_TRT10 = "x86-trt10"
    X86_TRT11 = "x86-trt11"
    RTX = "rtx"


class BundleLayout(Choice):
    """Serving layouts a bundle may add to its target: a Triton model repository, a DeepStream nvinfer config."""

    TRITON = "triton"
    DEEPSTREAM = "deepstream"
