"""Distributed helpers: one place that knows about torchrun, DDP and rank 0.

Under ``torchrun`` the env vars ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` are set; we start a process group with
``nccl`` on CUDA and ``gloo`` on CPU. Outside torchrun everything is a no-op on a world of one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def is_torchrun() -> bool:
    """True when launched by torchrun (or any launcher setting WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device | None = None) -> torch.device:
    """Start the process group when under torchrun; return this process's device.

    Args:
        device: requested device; default CUDA (by LOCAL_RANK) when available, else CPU.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if is_torchrun() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0: the only rank that writes artifacts and shows progress."""
    return rank() == 0


def barrier() -> None:
    """Wait for all ranks (no-op on one process)."""
    if world_size() > 1:
        dist.barrier()


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Copy ``tensor`` from ``src`` to every rank in place (no-op on one process)."""
    if world_size() > 1:
        dist.broadcast(tensor, src)
    return tensor


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over ranks in place (no-op on one process)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= world_size()
    return tensor


def cleanup() -> None:
    """Destroy the process group if one was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_then_cleanup(fn: Callable[[], T]) -> tuple[T, bool]:
    """Run ``fn`` on this rank, then end the process group; return its result and whether this is rank 0.

    NOTE: rank 0 is asked before the cleanup, because afterwards every rank looks like rank 0; a command prints
    its summary only when the second value is true, so ``torchrun`` prints it once.
    """
    try:
        result = fn()
        main = is_main()
    finally:
        cleanup()
    return result, main
