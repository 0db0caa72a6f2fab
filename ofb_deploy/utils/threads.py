"""CPU thread counts: the one place that decides how many intra-op threads torch and ONNX Runtime use.

Timings and training always run with a fixed, recorded count: an explicit request, else ``OMP_NUM_THREADS``,
else every core this process may use (its share of them under torchrun).
"""

from __future__ import annotations

import logging
import os

import torch

from ofb_deploy.utils import dist

log = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every OS
        return os.cpu_count() or 1


def cpu_threads(threads: int | None = None) -> int:
    """The thread count to use: ``threads``, else ``OMP_NUM_THREADS``, else this process's share of the cores.

    Args:
        threads: an explicit count, or ``None`` for the default.
    """
    if threads is not None:
        return max(1, int(threads))
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, available_cores() // dist.world_size())


def set_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (see ``cpu_threads``) and return the number used."""
    count = cpu_threads(threads)
    torch.set_num_threads(count)
    log.info("using %d CPU thread(s)", count)
    return count
