"""Dense vs subnet latency on one backend, interleaved in one process, for a fair speedup.

On a shared or thermally throttled machine, timing the dense model for a while and then the subnet folds any
drift in load into the speedup (run-to-run noise is 5-16% on a 2-core CPU). Here both runners are
active at once, each warmed up, and the timed work is split into rounds; each round times every runner for a
slice of the time budget, and the order alternates between rounds (A B, B A, A B ...) so neither runner always
runs right after the other. Each runner's samples from all rounds make one ``LatencyReport``; the speedup is the
ratio of their medians, and the median of the per-round median ratios is kept next to it as a drift check.

Each slice starts with ``settle`` untimed iterations. Right after a switch the runner's weights are out of cache
and the previous ONNX Runtime session's intra-op threads are still spinning on the cores (measured on this 2-core
machine: six sessions switched every 3 runs took 10-14 ms a run where one session alone took 3-5 ms), so without
them a slice's first runs time the switch, not the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ofb_deploy.data.readers import CalibrationReader, Feed
from ofb_deploy.engines.base import Runner
from ofb_deploy.errors import ConfigError
from ofb_deploy.timing.latency import (
    LatencyReport,
    check_timing_args,
    describe_runner,
    feed_batch_size,
    first_feed,
    time_iterations,
    warm_up,
)

log = logging.getLogger(__name__)


@dataclass
class InterleavedResult:
    """Latency of each runner (by label) measured in alternating rounds, and the pairwise speedup.

    Args:
        reports: label to ``LatencyReport`` (samples pooled over rounds).
        round_medians_ms: label to the median of each round.
        rounds: number of rounds.
    """

    reports: dict[str, LatencyReport]
    round_medians_ms: dict[str, list[float]]
    rounds: int

    def speedup(self, baseline: str = "dense", candidate: str = "subnet") -> float:
        """``median(baseline) / median(candidate)`` over all samples (> 1: candidate is faster)."""
        return self.reports[baseline].median_ms / self.reports[candidate].median_ms

    def round_ratios(self, baseline: str = "dense", candidate: str = "subnet") -> list[float]:
        """Each round's ``median(baseline) / median(candidate)``."""
        ratios = np.asarray(self.round_medians_ms[baseline]) / np.asarray(self.round_medians_ms[candidate])
        return [float(r) for r in ratios]

    def round_speedup(self, baseline: str = "dense", candidate: str = "subnet") -> float:
        """Median over rounds of the per-round median ratio (robust to slow drift in machine load)."""
        return float(np.median(self.round_ratios(baseline, candidate)))


def measure_interleaved(
    runners: Mapping[str, Runner],
    feed: Feed | CalibrationReader | Mapping[str, Feed],
    *,
    rounds: int = 6,
    warmup_s: float = 0.2,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    settle: int = 1,
    on_round: Callable[[int], None] | None = None,
) -> InterleavedResult:
    """Time several runners on the same batch in alternating rounds within this process.

    Runners that are not active are activated here and deactivated at the end.

    Args:
        runners: label (e.g. ``dense``, ``subnet``) to runner; at least one.
        feed: one batch for all runners, or a reader (first batch), or label to batch (same batch size).
        rounds: rounds to split the timed work into (>= 1); the order flips every round.
        warmup_s: untimed warm-up per runner, before the first round.
        min_iters: fewest timed iterations per runner in total.
        min_time_s: fewest timed seconds per runner in total.
        settle: untimed iterations at the start of every slice (>= 0).
        on_round: called with the round's index after each round (progress).
    """
    check_timing_args(warmup_s, min_iters, min_time_s)
    if settle < 0:
        raise ConfigError(f"settle must be >= 0, got {settle}")
    if not runners:
        raise ConfigError("no runners to time")
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    feeds = _feeds_by_label(runners, feed)
    started = [r for r in runners.values() if not r.is_active]
    try:
        for runner in started:
            runner.activate()
        return _run_rounds(runners, feeds, rounds, (warmup_s, settle), (min_iters, min_time_s), on_round)
    finally:
        for runner in started:
            runner.deactivate()


def _feeds_by_label(runners: Mapping[str, Runner], feed: Any) -> dict[str, Feed]:
    if isinstance(feed, Mapping) and set(feed) == set(runners) and all(isinstance(v, dict) for v in feed.values()):
        feeds = {label: first_feed(feed[label]) for label in runners}
    else:
        one = first_feed(feed)
        feeds = dict.fromkeys(runners, one)
    sizes = {feed_batch_size(f) for f in feeds.values()}
    if len(sizes) != 1:
        raise ConfigError(f"interleaved runners need the same batch size, got {sorted(sizes)}")
    return feeds


def _run_rounds(
    runners: Mapping[str, Runner],
    feeds: dict[str, Feed],
    rounds: int,
    warmup: tuple[float, int],
    budget: tuple[int, float],
    on_round: Callable[[int], None] | None,
) -> InterleavedResult:
    # NOTE: each runner holds its own bound inputs, so switching runners between rounds costs no copies.
    (warmup_s, settle), (min_iters, min_time_s) = warmup, budget
    warm: dict[str, float] = {}
    for label, runner in runners.items():
        runner.bind(feeds[label])
        warm[label] = warm_up(runner, warmup_s)
    samples: dict[str, list[float]] = {label: [] for label in runners}
    medians: dict[str, list[float]] = {label: [] for label in runners}
    per_iters = max(1, -(-min_iters // rounds))
    per_time = min_time_s / rounds
    order = list(runners)
    for r in range(rounds):
        for label in order if r % 2 == 0 else order[::-1]:
            for _ in range(settle):
                runners[label].run_bound()
                runners[label].synchronize()
            got = time_iterations(runners[label], min_iters=per_iters, min_time_s=per_time)
            samples[label].extend(got)
            medians[label].append(float(np.median(got)) * 1e3)
        if on_round is not None:
            on_round(r)
    reports = {
        label: LatencyReport.from_samples(
            samples[label],
            backend=runner.backend,
            batch_size=feed_batch_size(feeds[label]),
            warmup_s=warm[label],
            runner=describe_runner(runner),
        )
        for label, runner in runners.items()
    }
    for report in reports.values():
        log.debug(report.summary())
    return InterleavedResult(reports=reports, round_medians_ms=medians, rounds=rounds)
