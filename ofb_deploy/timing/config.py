"""``TimingConfig``: how every latency in ofb-deploy is timed. One home: validate, compare and bench take their
fields from it (their configs subclass it), and the latency profiler's lighter settings are one instance of it.

The method is trtexec's per runner (warm-up by time, then at least ``min_iters`` iterations and ``min_time_s``
seconds; ``timing.latency``), with several runners timed together in ``rounds`` alternating rounds and ratios
taken as medians of the per-round ratios (``timing.interleaved``), so machine drift hits both sides of a ratio.
"""

from __future__ import annotations

from typing import ClassVar

from ofb_deploy.engines.config import DEFAULT_BATCHES
from ofb_deploy.utils.config import Batches, ConfigModel, NonNegativeFloat, PositiveInt


class TimingConfig(ConfigModel):
    """How latency is timed.

    Args:
        batches: batch sizes timed.
        threads: CPU threads of ``torch`` and ``ort-cpu`` (``None``: every core this process may use). One thread
            (the default) gives a ratio that repeats on a shared machine; every core is what a server would run
            (docs/results.md).
        warmup_s: warm-up seconds per runner and batch.
        min_iters: fewest timed iterations per runner and batch.
        min_time_s: fewest timed seconds per runner and batch.
        rounds: interleaving rounds per batch (runners alternate in each; ratios are medians over rounds).
    """

    SECTION: ClassVar[str] = "timing"

    batches: Batches = DEFAULT_BATCHES
    threads: PositiveInt | None = 1
    warmup_s: NonNegativeFloat = 0.2
    min_iters: PositiveInt = 10
    min_time_s: NonNegativeFloat = 1.0
    rounds: PositiveInt = 6

    def measure_kwargs(self) -> dict[str, float | int]:
        """The keyword arguments ``measure_interleaved`` takes from this config."""
        return {"rounds": self.rounds, "warmup_s": self.warmup_s, "min_iters": self.min_iters,
                "min_time_s": self.min_time_s}  # fmt: skip


# the latency profiler times ~100 small graphs per table: shorter slices, fewer rounds (its own batch and threads)
PROFILE_BATCH = 8  # the batch latency tables are timed at (a table predicts one batch size)
PROFILE_TIMING = TimingConfig(batches=(PROFILE_BATCH,), rounds=4, warmup_s=0.05, min_iters=8, min_time_s=0.4)
