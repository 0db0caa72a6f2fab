"""The engine build each target runs on the device: which ONNX, which trtexec flags, which Python-builder options.

Flags per TensorRT version, from trtexec's own option parser (``samples/common/sampleOptions.cpp`` of TensorRT
8.5.2, 10.3.0, 10.13.0 and 11.0):

* shapes ``--minShapes/--optShapes/--maxShapes=input:NxCxHxW`` (explicit batch; 10 removed ``--batch``,
  ``--maxBatch``); workspace ``--memPoolSize=workspace:<MiB>`` (8.5 deprecates ``--workspace``, 10 removed it);
  ``--timingCacheFile``; build without timing: ``--buildOnly`` in 8.5 (it has no ``--skipInference``),
  ``--skipInference`` from 8.6.
* TensorRT 8.5 and 10: ``--fp16``, ``--int8``, ``--calib=<cache>`` (implicit INT8, deprecated from 10.1). A Q/DQ
  ONNX still needs ``--int8`` in a weakly typed build (TensorRT issue 4021), and ``--fp16`` lets the layers around
  it fall back to FP16 rather than FP32. ``--stronglyTyped`` (from 9.x) takes the precision from the ONNX and
  refuses ``--int8``/``--fp16``: TensorRT 10 fp16 builds use it on the float16 ONNX, whose LayerNorm and Softmax
  stay float32.
* TensorRT 8.5: no ``LayerNormalization`` importer, so LayerNorm is decomposed; its layers are pinned to FP32 with
  ``--precisionConstraints=obey --layerPrecisions=<layer>:fp32,...`` (a decomposed LayerNorm overflows in FP16:
  the reported ViT-B at 19% top-1 on Orin).
* TensorRT 11: ``--fp16``, ``--int8``, ``--best``, ``--calib`` are gone; networks are strongly typed by default
  (``--stronglyTyped`` is a deprecated no-op), so no precision flag at all.
* TensorRT-RTX: built by the bundle's Python builder (``tensorrt_rtx``, strongly typed, CPU-only AOT possible).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ofb_deploy.artifacts import BUNDLE_FILES
from ofb_deploy.bundle.targets import TargetSpec
from ofb_deploy.choices import Precision

DEFAULT_WORKSPACE_MIB = 1024


@dataclass(frozen=True)
class BuildPlan:
    """One way ``build.sh`` builds the engine of a bundle.

    Args:
        mode: ``fp16``, ``int8`` (explicit, from the Q/DQ ONNX) or ``int8-implicit`` (fp32 ONNX + calibration cache).
        onnx: ``BUNDLE_FILES`` key of the ONNX the engine is built from.
        flags: trtexec precision flags (``--fp16``, ``--int8``, ``--stronglyTyped``, ``--calib`` ...).
        builder: Python-builder options of the same build (``--strongly-typed``, ``--fp16`` ...).
        check_onnx: ``BUNDLE_FILES`` key of the ONNX whose ONNX Runtime outputs this engine should match.
    """

    mode: str
    onnx: str
    flags: tuple[str, ...] = ()
    builder: tuple[str, ...] = field(default_factory=tuple)
    check_onnx: str = "onnx"


def build_plans(target: TargetSpec, precision: str, int8_high_precision: str = "fp32") -> list[BuildPlan]:
    """The builds a bundle offers, the default first.

    Args:
        target: the bundle's target.
        precision: ``fp16`` or ``int8``.
        int8_high_precision: ``fp16`` when the Q/DQ ONNX stores its unquantized layers in float16 (ModelOpt for a
            strongly typed build), else ``fp32``.
    """
    pin_ln = ("--precisionConstraints=obey", "--layerPrecisions=$FP32_LAYERS") if target.decomposed_layernorm else ()
    pin_ln_builder = ("--fp32-layers", "$FP32_LAYERS_FILE") if target.decomposed_layernorm else ()
    if target.strongly_typed:
        key = "onnx_fp16" if precision == Precision.FP16 else "onnx_int8"
        return [BuildPlan(precision, key, (), ("--strongly-typed",), key)]
    if precision == Precision.FP16:
        if target.decomposed_layernorm:  # TensorRT 8.5: no --stronglyTyped; flags, with LayerNorm pinned
            return [BuildPlan("fp16", "onnx", ("--fp16", *pin_ln), ("--fp16", *pin_ln_builder), "onnx_fp16")]
        return [BuildPlan("fp16", "onnx_fp16", ("--stronglyTyped",), ("--strongly-typed",), "onnx_fp16")]
    if int8_high_precision == "fp16":
        explicit = BuildPlan("int8", "onnx_int8", ("--stronglyTyped",), ("--strongly-typed",), "onnx_int8")
    else:
        explicit = BuildPlan("int8", "onnx_int8", ("--int8", "--fp16", *pin_ln),
                             ("--int8", "--fp16", *pin_ln_builder), "onnx_int8")  # fmt: skip
    implicit = BuildPlan(
        "int8-implicit",
        "onnx",
        ("--int8", "--fp16", "--calib=$CALIB", *pin_ln),
        ("--int8", "--fp16", "--calib", "$CALIB", *pin_ln_builder),
        "onnx_int8",
    )
    return [explicit, implicit]


def shape_flags(input_name: str, chw: tuple[int, int, int], profile: tuple[int, int, int]) -> tuple[str, ...]:
    """``--minShapes/--optShapes/--maxShapes`` for a dynamic batch over ``profile`` (min, opt, max)."""
    dims = "x".join(str(d) for d in chw)
    names = ("--minShapes", "--optShapes", "--maxShapes")
    return tuple(f"{flag}={input_name}:{batch}x{dims}" for flag, batch in zip(names, profile, strict=True))


def trtexec_flags(
    target: TargetSpec,
    plan: BuildPlan,
    input_name: str,
    chw: tuple[int, int, int],
    profile: tuple[int, int, int],
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
) -> list[str]:
    """The trtexec arguments of ``plan`` (paths as ``$HERE``/``$ENGINE``/``$TIMING``, expanded by ``build.sh``).

    Args:
        target: the bundle's target (its TensorRT major version picks the flag spellings).
        plan: the build.
        input_name: the network input.
        chw: the input's channels, height and width.
        profile: min, opt and max batch.
        workspace_mib: workspace memory pool limit.
    """
    major = target.accepts[0][0]
    args = [f"--onnx=$HERE/{BUNDLE_FILES[plan.onnx]}", "--saveEngine=$ENGINE_TMP"]
    args += shape_flags(input_name, chw, profile)
    args += [f"--memPoolSize=workspace:{workspace_mib}", "--timingCacheFile=$TIMING"]
    args += list(plan.flags)
    args.append("--buildOnly" if major == 8 else "--skipInference")
    return args


def builder_args(plan: BuildPlan, library: str, profile: tuple[int, int, int], workspace_mib: int) -> list[str]:
    """The Python builder's arguments of ``plan`` (same ``$`` variables as ``trtexec_flags``).

    Args:
        plan: the build.
        library: ``tensorrt`` or ``tensorrt_rtx``.
        profile: min, opt and max batch.
        workspace_mib: workspace memory pool limit.
    """
    args = ["--library", library, "--onnx", f"$HERE/{BUNDLE_FILES[plan.onnx]}", "--engine", "$ENGINE_TMP"]
    args += ["--profile", ",".join(str(b) for b in profile), "--workspace-mib", str(workspace_mib)]
    return [*args, "--timing-cache", "$TIMING", *plan.builder]
