"""Golden data of a bundle: real validation images with their labels, and ONNX Runtime's reference outputs.

``check.py`` runs the engine (or ONNX Runtime) on the golden images on the device and compares with what was
measured here. The images are stored as the model's input, one of two ways:

The images are spread evenly over the validation split (a data set is often ordered, and the first images of
Fashion-MNIST's test set are easier than the rest: 90.2% against 89.6% for the default subnet's INT8), and the
inputs are stored compressed (``inputs.npz``), so 5000 images of the default task take 2.3 MB.

* ``uint8``: the pixels before normalisation, when ``(u8 / 255 - mean) / std`` in float32 reproduces the
  preprocessed input bit for bit (Fashion-MNIST padded to 32 px: 1 KB per image instead of 4 KB). This is also
  what DeepStream's nvinfer computes (``net-scale-factor`` and ``offsets``).
* ``float32``: the preprocessed input itself (resized or RGB images whose values are not such a map).

``golden.json`` says which, with the mean/std, and the tolerances ``check.py`` applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.engines.ort import OrtRunner
from ofb_deploy.errors import ConfigError

DEFAULT_GOLDEN_IMAGES = 5000
# what check.py allows on the device, against the numbers measured here on ONNX Runtime CPU:
# top-1 agreement with the fp32 reference (the parity tolerance of `ofb-deploy export`), top-1 drop in points,
# and max abs logit error as a multiple of the error measured here, floored at a share of the largest logit
TOP1_AGREEMENT = {"fp16": 0.95, "int8": 0.90}
TOP1_DROP_POINTS = {"fp16": 0.5, "int8": 1.0}
MAX_ABS_FACTOR = 4.0
MAX_ABS_FLOOR = {"fp16": 0.02, "int8": 0.1}


def golden_images(data: Any, spec: Any, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` validation images evenly spaced over the split (preprocessed for ``spec``) and their labels.

    Args:
        data: the model's data (a ``DataConfig`` or a name).
        spec: the model's ``ArchSpec``.
        count: how many images.
    """
    import torch.utils.data  # lazy: the data sets import torch

    from ofb_deploy.data import as_config, build_splits, make_reader

    if count < 1:
        raise ConfigError(f"--golden-images must be at least 1, got {count}")
    splits = build_splits(as_config(data), spec, train_augment=False)
    total = len(splits.val)
    picks = np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()
    reader = make_reader(torch.utils.data.Subset(splits.val, picks), batch_size=256)
    return reader.images, reader.labels


def normalize_u8(pixels: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(u8 / 255 - mean) / std`` per channel in float32 (the model's preprocessing; check.py does the same)."""
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return (pixels.astype(np.float32) / np.float32(255.0) - m) / s


def encode_images(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, str]:
    """``(array, encoding)``: ``uint8`` pixels when they reproduce ``images`` exactly, else the float32 input."""
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    pixels = np.rint((images * s + m) * 255.0)
    if pixels.min() >= 0 and pixels.max() <= 255:
        u8 = pixels.astype(np.uint8)
        if np.array_equal(normalize_u8(u8, mean, std), images):
            return u8, "uint8"
    return np.ascontiguousarray(images, np.float32), "float32"


def ort_logits(onnx_path: Path, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Outputs of ONNX Runtime (CPU) on ``images``, in batches."""
    with OrtRunner(onnx_path, name="golden") as runner:
        name = runner.input_specs()[0].name
        parts = [next(iter(runner.infer({name: images[i : i + batch]}).values())) for i in range(0, len(images), batch)]
    return np.concatenate(parts).astype(np.float32)


def measure(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy (%), top-1 agreement with the reference, max abs error against it."""
    return {
        "top1": round(100.0 * float((logits.argmax(1) == labels).mean()), 3),
        "top1_agreement": round(float((logits.argmax(1) == reference.argmax(1)).mean()), 5),
        "max_abs": float(np.abs(logits - reference).max()),
    }


def tolerances(precision: str, measured: dict[str, float], reference: np.ndarray) -> dict[str, float]:
    """What ``check.py`` requires of the device's outputs for ``precision`` (see the constants above)."""
    floor = MAX_ABS_FLOOR[precision] * float(np.abs(reference).max())
    return {
        "min_top1_agreement": TOP1_AGREEMENT[precision],
        "expected_top1": measured["top1"],
        "max_top1_drop": TOP1_DROP_POINTS[precision],
        "max_abs": round(max(MAX_ABS_FACTOR * measured["max_abs"], floor), 6),
    }
