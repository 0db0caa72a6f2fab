"""Input readers: the tiny ``get_next() -> feed | None`` protocol every data source implements.

This is ONNX Runtime's ``CalibrationDataReader`` protocol; calibration (ORT and TensorRT), output comparison
and latency timing all take a reader, so one data selection serves every step. A feed maps input names to
numpy arrays; labelled readers also give the labels of each batch for accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from ofb_deploy.models.io import INPUT_NAME

Feed = dict[str, np.ndarray]


@runtime_checkable
class CalibrationReader(Protocol):
    """Anything with ``get_next()`` returning the next feed, or ``None`` when exhausted."""

    def get_next(self) -> Feed | None: ...


class ArrayReader:
    """Batches of a preprocessed ``(N, C, H, W)`` float32 array, with optional labels.

    Args:
        images: preprocessed images (already normalised for the model).
        labels: class indices, one per image, or ``None``.
        batch_size: images per feed (the last batch may be smaller unless ``drop_last``).
        input_name: name of the model input in each feed.
        drop_last: skip a final short batch (fixed-shape engines need it).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None = None,
        batch_size: int = 32,
        input_name: str = INPUT_NAME,
        drop_last: bool = False,
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {images.shape}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.batch_size = batch_size
        self.input_name = input_name
        self.drop_last = drop_last
        self._pos = 0

    def __len__(self) -> int:
        full, rest = divmod(len(self.images), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _next_slice(self) -> slice | None:
        start = self._pos
        stop = min(start + self.batch_size, len(self.images))
        if start >= stop or (self.drop_last and stop - start < self.batch_size):
            return None
        self._pos = stop
        return slice(start, stop)

    def get_next(self) -> Feed | None:
        """The next feed, or ``None`` at the end (call ``rewind()`` to start again)."""
        sl = self._next_slice()
        return None if sl is None else {self.input_name: self.images[sl]}

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._pos = 0

    def __iter__(self) -> Iterator[Feed]:
        self.rewind()
        while (feed := self.get_next()) is not None:
            yield feed

    def iter_labeled(self) -> Iterator[tuple[Feed, np.ndarray]]:
        """Yield ``(feed, labels)`` pairs from the start."""
        if self.labels is None:
            raise ValueError("this reader has no labels")
        self.rewind()
        while (sl := self._next_slice()) is not None:
            yield {self.input_name: self.images[sl]}, self.labels[sl]

    def with_batch_size(self, batch_size: int, drop_last: bool | None = None) -> ArrayReader:
        """The same data in batches of another size."""
        return ArrayReader(
            self.images,
            self.labels,
            batch_size,
            self.input_name,
            self.drop_last if drop_last is None else drop_last,
        )
