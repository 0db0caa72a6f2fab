"""``CalibrationSource``: one seeded selection of calibration images serving every INT8 path.

The images come from the run's data (``build_splits(...).calib``: a seeded subset of the training set, with the
model's own preprocessing - size, channels, mean/std) and are materialised once as a numpy array. The same
array then feeds ONNX Runtime's ``CalibrationDataReader`` (``ort_reader``), TensorRT 10's
``IInt8EntropyCalibrator2`` (``trt_calibrator``) and the QDQ ONNX that strongly typed TensorRT 11 and ONNX
Runtime use (``quantize_qdq``). ``key`` fingerprints the selection, so cached results (QDQ files, TensorRT
calibration caches) are reused only for the same images. Real models want >= 500 calibration images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.calibrate.qdq import quantize_qdq
from ofb_deploy.calibrate.trt import make_entropy_calibrator
from ofb_deploy.data.readers import ArrayReader
from ofb_deploy.errors import ConfigError
from ofb_deploy.models.io import INPUT_NAME


class OrtCalibrationReader:
    """ONNX Runtime ``CalibrationDataReader`` over a source's batches (``get_next`` / ``rewind``).

    ``onnxruntime.quantization`` only needs ``get_next()`` (ORT's base class is a plain ABC with that
    method), so this duck-types it without importing onnxruntime at module load.

    Args:
        reader: the batches.
    """

    def __init__(self, reader: ArrayReader) -> None:
        self.reader = reader
        self.reader.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self.reader.get_next()

    def rewind(self) -> None:
        self.reader.rewind()

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.reader)


@dataclass
class CalibrationSource:
    """Calibration images plus a description of how they were chosen.

    Args:
        images: ``(N, C, H, W)`` float32, already preprocessed for the model.
        selection: JSON-able description (data config, N, seed, split) used in ``key``.
        batch_size: images per calibration batch.
    """

    images: np.ndarray
    selection: dict[str, Any]
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or len(self.images) == 0:
            raise ConfigError(f"calibration images must be a non-empty (N, C, H, W) array, got {self.images.shape}")
        self.images = np.ascontiguousarray(self.images, dtype=np.float32)

    @classmethod
    def from_data(
        cls,
        data: Any,
        spec: Any,
        num_images: int = 512,
        seed: int = 0,
        batch_size: int = 32,
    ) -> CalibrationSource:
        """Draw ``num_images`` seeded training images through the model's preprocessing.

        Args:
            data: a ``DataConfig``, its dict, or a name/path (``fmnist`` or an ImageFolder tree).
            spec: the model's ``ArchSpec`` (size, channels, mean/std).
            num_images: calibration images (>= 500 recommended for real models).
            seed: seed of the subset.
            batch_size: images per calibration batch.
        """
        from ofb_deploy.data import as_config, build_splits, make_reader  # lazy: the data sets import torch

        if num_images < 1:
            raise ConfigError(f"calibration needs at least one image, got {num_images}")
        cfg = as_config(data).replace(calib_size=num_images, seed=seed)
        splits = build_splits(cfg, spec, train_augment=False)
        reader = make_reader(splits.calib, batch_size=batch_size, limit=num_images)
        selection = {"data": cfg.to_dict(), "split": "calib", "num_images": len(reader.images), "seed": seed}
        selection["input"] = [spec.in_chans, spec.img_size, spec.img_size]
        return cls(reader.images, selection, batch_size)

    @property
    def key(self) -> str:
        """Fingerprint of the selection and the actual pixels (16 hex chars)."""
        digest = hashlib.sha256(repr(sorted(self.selection.items())).encode())
        digest.update(self.images.tobytes())
        return digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.images)

    def reader(self, batch_size: int | None = None, input_name: str = INPUT_NAME) -> ArrayReader:
        """A fresh ``ArrayReader`` over the images (drops a short last batch, for fixed-shape calibrators)."""
        bs = batch_size or self.batch_size
        return ArrayReader(self.images, batch_size=bs, input_name=input_name, drop_last=len(self.images) >= bs)

    def ort_reader(self, input_name: str = INPUT_NAME) -> OrtCalibrationReader:
        """An ONNX Runtime ``CalibrationDataReader``."""
        return OrtCalibrationReader(self.reader(input_name=input_name))

    def fixed_batches(self, batch_size: int | None = None, input_name: str = INPUT_NAME) -> ArrayReader:
        """Batches that all have exactly ``reader.batch_size`` images, for TensorRT 10 calibration.

        TensorRT reads ``batch x C x H x W`` floats behind each pointer (the calibration profile's shape), so a
        short batch would make it read past the buffer: the batch is capped at the number of images and a short
        last batch is dropped.

        Args:
            batch_size: wanted batch (default: the source's); fewer images than that make a smaller batch.
            input_name: the network input's name.
        """
        batch = max(1, min(batch_size or self.batch_size, len(self.images)))
        return ArrayReader(self.images, batch_size=batch, input_name=input_name, drop_last=True)

    def trt_calibrator(
        self,
        trt: Any,
        cache_path: Path,
        input_name: str = INPUT_NAME,
        batch_size: int | None = None,
    ) -> Any:
        """A TensorRT 10 ``IInt8EntropyCalibrator2`` with a cache file (see ``calibrate.trt``).

        The build gives it a calibration profile of its own with min = opt = max = ``get_batch_size()``, because
        TensorRT calibrates at the calibration profile's opt shape (``engines.trt_build``).

        Args:
            trt: the imported ``tensorrt`` module (10.x; 11 has no calibrators).
            cache_path: calibration cache; read when present, written after calibrating.
            input_name: the network input's name.
            batch_size: calibration batch (default: the source's; capped at the number of images).
        """
        return make_entropy_calibrator(trt, self.fixed_batches(batch_size, input_name), cache_path)

    def quantize_qdq(self, onnx_path: Path, out_path: Path, config: Any = None, cache_dir: Path | None = None) -> dict:
        """Write a QDQ INT8 ONNX of ``onnx_path`` (see ``calibrate.qdq.quantize_qdq``)."""
        return quantize_qdq(onnx_path, out_path, self, config=config, cache_dir=cache_dir)
