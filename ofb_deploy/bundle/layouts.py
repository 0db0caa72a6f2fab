"""Serving layouts of a bundle: a Triton model repository and a DeepStream nvinfer config.

Triton (``model_config.proto``; parsed by ``tritonclient``'s ``model_config_pb2.ModelConfig`` in the tests):
``<repo>/<model>/config.pbtxt`` plus ``1/model.plan`` (``platform: "tensorrt_plan"``) or the ONNX in ``1/``
(``"onnxruntime_onnx"``). With ``max_batch_size > 0`` the ``dims`` leave the batch out; ``dynamic_batching``
batches requests up to the engine profile's max; ``instance_group`` puts one instance on the GPU. Triton's
TensorRT backend does not load TensorRT-RTX engines, so the ``rtx`` target serves its ONNX with ONNX Runtime.

DeepStream (Gst-nvinfer config keys, ``gstnvinfer_property_parser.h``): ``onnx-file``, ``model-engine-file``,
``network-mode`` (0 fp32, 1 int8, 2 fp16), ``int8-calib-file``, ``batch-size``, ``network-type`` (1 classifier),
``infer-dims``, ``model-color-format`` (0 RGB, 2 GRAY), and ``net-scale-factor``/``offsets``: nvinfer computes
``y = net-scale-factor * (x - offsets)`` on 0..255 pixels, and the model wants ``(x / 255 - mean) / std``, so
``offsets = 255 * mean`` and ``net-scale-factor = 1 / (255 * std)``. It takes one scale for all channels: with
per-channel stds that differ, the mean std is used and the config says so. Paths are relative to the config file.
"""

from __future__ import annotations

from typing import Any

from ofb_deploy.artifacts import BUNDLE_FILES, TRITON_LABELS, TRITON_MODEL_FILES

TRITON_PLAN = TRITON_MODEL_FILES["tensorrt_plan"]
TRITON_ONNX = TRITON_MODEL_FILES["onnxruntime_onnx"]


def triton_config(model: str, platform: str, spec: Any, input_name: str, output_name: str, max_batch: int) -> str:
    """``config.pbtxt`` of one model (protobuf text format of Triton's ``ModelConfig``).

    Args:
        model: the model's name (its folder's name).
        platform: ``tensorrt_plan`` or ``onnxruntime_onnx``.
        spec: the model's ``ArchSpec`` (input dims, classes).
        input_name: the network input.
        output_name: the network output.
        max_batch: the engine profile's max batch.
    """
    dims = f"[ {spec.in_chans}, {spec.img_size}, {spec.img_size} ]"
    preferred = sorted({b for b in (1, max_batch // 2, max_batch) if b >= 1})
    return (
        f'name: "{model}"\n'
        f'platform: "{platform}"\n'
        f"max_batch_size: {max_batch}\n"
        f'input [\n  {{\n    name: "{input_name}"\n    data_type: TYPE_FP32\n    format: FORMAT_NCHW\n'
        f"    dims: {dims}\n  }}\n]\n"
        f'output [\n  {{\n    name: "{output_name}"\n    data_type: TYPE_FP32\n    dims: [ {spec.num_classes} ]\n'
        f'    label_filename: "{TRITON_LABELS}"\n  }}\n]\n'
        f"dynamic_batching {{\n  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]\n"
        f"  max_queue_delay_microseconds: 100\n}}\n"
        f"instance_group [\n  {{\n    count: 1\n    kind: KIND_GPU\n  }}\n]\n"
    )


def triton_note(platform: str) -> str:
    """What the version folder ``1/`` of a TensorRT model says about the engine that belongs there."""
    if platform == "onnxruntime_onnx":
        return f"{TRITON_ONNX} here is the bundle's ONNX; Triton serves it with ONNX Runtime.\n"
    return (
        f"Put the engine here as {TRITON_PLAN}: `bash ../../../build.sh --triton` builds it on this device and copies\n"
        "it here. An engine only runs with the TensorRT version and GPU it was built with (see ../../../README.md).\n"
    )


def deepstream_config(
    spec: Any,
    *,
    onnx_key: str,
    network_mode: int,
    batch: int,
    output_name: str,
    calib: bool,
    implicit_possible: bool = False,
) -> str:
    """The nvinfer config (``[property]`` group) of a bundle, its paths relative to ``deepstream/``.

    Args:
        spec: the model's ``ArchSpec`` (mean, std, channels, input size).
        onnx_key: ``BUNDLE_FILES`` key of the ONNX nvinfer builds from when the engine is missing.
        network_mode: 0 fp32, 1 int8, 2 fp16.
        batch: ``batch-size`` (the engine profile's max batch).
        output_name: the network output.
        calib: point ``int8-calib-file`` at the version-stamped calibration cache ``build.sh`` writes.
        implicit_possible: the bundle also has an implicit-INT8 build (say how to switch to it).
    """
    stds = [float(s) for s in spec.std]
    scale = 1.0 / (255.0 * (sum(stds) / len(stds)))
    offsets = ";".join(f"{255.0 * float(m):.6g}" for m in spec.mean)
    lines = [
        "# DeepStream Gst-nvinfer config written by `ofb-deploy bundle`; run ../build.sh first so the engine exists.",
        "# nvinfer: y = net-scale-factor * (x - offsets) on 0..255 pixels = (x / 255 - mean) / std.",
    ]
    if max(stds) - min(stds) > 1e-6:
        lines.append(f"# NOTE: nvinfer takes one scale for all channels: the mean of std {stds} is used.")
    lines += [
        "[property]",
        "gpu-id=0",
        f"net-scale-factor={scale:.9g}",
        f"offsets={offsets}",
        f"model-color-format={2 if spec.in_chans == 1 else 0}",
        f"infer-dims={spec.in_chans};{spec.img_size};{spec.img_size}",
        f"onnx-file=../{BUNDLE_FILES[onnx_key]}",
        f"model-engine-file=../{BUNDLE_FILES['engine_dir']}/{TRITON_PLAN}",
    ]
    if calib:
        lines.append(f"int8-calib-file=../{BUNDLE_FILES['engine_dir']}/{BUNDLE_FILES['calib_cache']}")
    elif network_mode == 1 and implicit_possible:
        cache = f"../{BUNDLE_FILES['engine_dir']}/{BUNDLE_FILES['calib_cache']}"
        lines.append(
            f"# implicit INT8: onnx-file=../{BUNDLE_FILES['onnx']}, int8-calib-file={cache} (build.sh --implicit-int8)"
        )
    lines += [
        f"labelfile-path={BUNDLE_FILES['deepstream_labels'].rsplit('/', 1)[-1]}",
        f"batch-size={batch}",
        f"network-mode={network_mode}",
        "network-type=1",
        "process-mode=1",
        "gie-unique-id=1",
        f"output-blob-names={output_name}",
        "# the model outputs logits, not probabilities: nvinfer's classifier parser thresholds the raw values",
        "classifier-threshold=0.0",
        "maintain-aspect-ratio=0",
    ]
    return "\n".join(lines) + "\n"


def labels_text(num_classes: int, names: list[str] | None = None, separator: str = "\n") -> str:
    """The class labels (names when the data set has them, else indices).

    Args:
        num_classes: classifier outputs.
        names: class names in output order.
        separator: ``\\n`` for Triton's ``label_filename`` (one per line); ``;`` for nvinfer, whose classifier labels
            file holds one line per output layer with its labels separated by ';'.
    """
    labels = names if names and len(names) == num_classes else [str(i) for i in range(num_classes)]
    return separator.join(labels) + "\n"
