"""Fashion-MNIST from its idx ``.gz`` files (Xiao et al. 2017, arXiv 1708.07747; format of LeCun's MNIST).

The four files (``train-images-idx3-ubyte.gz`` ...) are read straight into uint8 tensors. The root defaults to
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``); when the files are missing there we try
torchvision's download into ``~/.cache/ofb-deploy/fashion-mnist``, and when that fails too, one line names the
install command.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ofb_deploy.errors import DataError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CACHE_ROOT = Path(os.environ.get("OFB_DATA_CACHE", Path.home() / ".cache" / "ofb-deploy")) / "fashion-mnist"
INSTALL_HINT = "sudo apt-get install dataset-fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NATIVE_SIZE = 28
_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (optionally gzipped) into a numpy array.

    Args:
        path: the file; the header is ``0 0 dtype ndim`` then ``ndim`` big-endian uint32 sizes.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
        raise DataError(f"{path} is not an idx file of uint8")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims}, file holds {body.size} values (truncated?)")
    return body.reshape(dims)


def _has_files(root: Path) -> bool:
    return all((root / name).is_file() for pair in FILES.values() for name in pair)


def _download(dest: Path) -> bool:
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(dest), train=True, download=True)
        FashionMNIST(str(dest), train=False, download=True)
    except Exception as exc:  # offline, proxy, checksum: any failure means "not available"
        log.debug("torchvision download failed: %s", exc)
        return False
    return True


def find_root(root: str | Path | None = None, download: bool = True) -> Path:
    """The folder holding the four Fashion-MNIST ``.gz`` files.

    Args:
        root: where to look; ``None`` means the Debian location, then the download cache.
        download: try torchvision's download when the files are missing (needs the network).
    """
    candidates = [Path(root)] if root is not None else [DEFAULT_ROOT, CACHE_ROOT, CACHE_ROOT / "FashionMNIST" / "raw"]
    for cand in candidates:
        if _has_files(cand):
            return cand
    if root is not None and not Path(root).exists():
        raise DataError(f"Fashion-MNIST root {root} does not exist (install: {INSTALL_HINT})")
    if download:
        dest = Path(root) if root is not None else CACHE_ROOT
        log.info("Fashion-MNIST not found; trying torchvision download into %s", dest)
        if _download(dest) and _has_files(dest / "FashionMNIST" / "raw"):
            return dest / "FashionMNIST" / "raw"
    where = root if root is not None else DEFAULT_ROOT
    raise DataError(f"Fashion-MNIST not found in {where} and download failed; install it with: {INSTALL_HINT}")


def load_fmnist(split: str = "train", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of one split.

    Args:
        split: ``train`` (60000 images) or ``test`` (10000 images).
        root: folder of the ``.gz`` files (see ``find_root``).
    """
    if split not in FILES:
        raise DataError(f"unknown Fashion-MNIST split {split!r}; splits: train, test")
    return _load_cached(split, find_root(root))


@functools.lru_cache(maxsize=4)
def _load_cached(split: str, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    # NOTE: several stages of one process read the same split; the tensors are never modified in place.
    images = read_idx(folder / FILES[split][0])
    labels = read_idx(folder / FILES[split][1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"Fashion-MNIST {split} in {folder}: images {images.shape} do not match labels {labels.shape}")
    import torch  # NOTE: here, not at the top: finding the files (dataset_info) must not need torch

    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
