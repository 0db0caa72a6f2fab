"""DataLoaders (shuffled by a seeded epoch-aware sampler, sharded under torchrun) and numpy readers.

Training always uses a ``DistributedSampler`` (with one replica outside torchrun), so the order of epoch ``e`` is
fixed by ``(seed, e)`` alone: a resumed run sees exactly the batches an uninterrupted run would have seen.
Evaluation shards the data without padding, so the all-reduced counts cover every image exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ofb_deploy.data.readers import ArrayReader
from ofb_deploy.errors import DataError
from ofb_deploy.utils.dist import rank, world_size


class ShardSampler(Sampler[int]):
    """Every ``world``-th index starting at ``rank``: disjoint shards that together cover the set once."""

    def __init__(self, length: int, rank: int = 0, world: int = 1) -> None:
        self.indices = list(range(rank, length, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    workers: int = 2,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader for training (shuffled, ``drop_last``) or evaluation (in order, sharded by rank).

    Args:
        dataset: a map-style data set.
        batch_size: images per batch on this process.
        train: shuffle and drop the last short batch; call ``set_epoch(loader, epoch)`` each epoch.
        workers: loader worker processes (0 loads in the main process).
        seed: shuffle seed.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if train:
        sampler: Sampler[int] = DistributedSampler(
            dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed, drop_last=True
        )
        if len(sampler) < batch_size:  # type: ignore[arg-type]
            batch_size = max(1, len(sampler))  # type: ignore[arg-type]
    else:
        sampler = ShardSampler(n, rank(), world_size())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=train,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the loader's sampler which epoch starts (reshuffles training data deterministically)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def make_reader(dataset: Dataset, *, batch_size: int = 32, limit: int | None = None) -> ArrayReader:
    """Materialise (the first ``limit`` items of) a data set as a labelled numpy ``ArrayReader``.

    Args:
        dataset: yields ``(CHW float tensor, label)``, e.g. ``DataSplits.calib`` or ``.val``.
        batch_size: images per feed.
        limit: at most this many images.
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))  # type: ignore[arg-type]
    loader = DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=256, shuffle=False, num_workers=0)
    images, labels = [], []
    for x, y in loader:
        images.append(x.numpy().astype(np.float32))
        labels.append(y.numpy().astype(np.int64))
    if not images:
        raise DataError("cannot make a reader from an empty data set")
    return ArrayReader(np.concatenate(images), np.concatenate(labels), batch_size=batch_size)
