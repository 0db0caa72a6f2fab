"""TensorRT 10 ``IInt8EntropyCalibrator2`` over a calibration reader, with a calibration cache file.

Only TensorRT 10.x has implicit-quantization calibrators (deprecated since 10.1, removed in 11).
The class is created inside a function because its base class lives in the ``tensorrt`` module, which is
imported lazily. Batches go to the GPU through torch CUDA tensors (torch is already a dependency; TensorRT
only needs a device pointer), kept alive until the next ``get_batch`` call as TensorRT requires. Needs
TensorRT 10 and a GPU: nothing in the class body can run on this project's CPU-only CI.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ofb_deploy.data.readers import ArrayReader
from ofb_deploy.errors import BackendUnavailableError
from ofb_deploy.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)


def make_entropy_calibrator(trt: Any, reader: ArrayReader, cache_path: Path) -> Any:
    """An ``IInt8EntropyCalibrator2`` instance feeding ``reader``'s batches.

    Args:
        trt: the imported ``tensorrt`` module (10.x).
        reader: batches of exactly ``reader.batch_size`` preprocessed images (``CalibrationSource.fixed_batches``);
            the build's calibration profile is that batch (min = opt = max).
        cache_path: read when present (calibration is then skipped by TensorRT), written after calibrating.
    """
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise BackendUnavailableError(
            f"TensorRT {trt.__version__} has no INT8 calibrators (removed in 11): build INT8 from the QDQ ONNX"
        )

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.reader = reader
            self.cache_path = Path(cache_path)
            self._device: Any = None
            reader.rewind()

        def get_batch_size(self) -> int:
            return reader.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            import torch

            feed = self.reader.get_next()
            if feed is None:
                return None
            batch = feed[reader.input_name]
            if list(names) != [reader.input_name] or len(batch) != reader.batch_size:
                # NOTE: TensorRT reads the calibration profile's shape behind the pointer; anything else overruns
                log.error("calibration batch %s for %s does not fit the profile", batch.shape, names)
                return None
            self._device = torch.from_numpy(batch).cuda().contiguous()
            # NOTE: TensorRT reads the buffer on its own stream; the copy must be finished when we return
            torch.cuda.current_stream().synchronize()
            return [int(self._device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            if self.cache_path.is_file():
                log.info("TensorRT INT8: using calibration cache %s", self.cache_path)
                return self.cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write_bytes(self.cache_path, bytes(cache))

    return EntropyCalibrator()
