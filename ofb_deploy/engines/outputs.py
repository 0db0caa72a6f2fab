"""Run several runners over the same reader and keep every output (and the labels, when the reader has them).

``run_runners`` is how export parity, validation and the bundle's golden outputs collect outputs;
``onnxtools.parity.compare_outputs`` then scores them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ofb_deploy.data.readers import CalibrationReader
from ofb_deploy.engines.base import Runner
from ofb_deploy.errors import ConfigError
from ofb_deploy.models.io import OUTPUT_NAME
from ofb_deploy.onnxtools.parity import AccuracyReport, compare_outputs


@dataclass
class RunResults:
    """Outputs of several runners on the same feeds.

    Args:
        outputs: runner name to (output name to array, batches concatenated).
        labels: the reader's labels in feed order, when it has any.
    """

    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    labels: np.ndarray | None = None

    def names(self) -> list[str]:
        return list(self.outputs)

    def compare(self, reference: str, candidate: str, **tolerances: Any) -> AccuracyReport:
        """``compare_outputs`` between two runners of this result (keyword tolerances pass through)."""
        for name in (reference, candidate):
            if name not in self.outputs:
                raise ConfigError(f"no results for runner {name!r}; have {self.names()}")
        return compare_outputs(self.outputs[reference], self.outputs[candidate], **tolerances)

    def accuracy(self, name: str, output: str = OUTPUT_NAME) -> float:
        """Top-1 accuracy in percent of runner ``name`` against the labels."""
        if self.labels is None:
            raise ConfigError("the reader had no labels: accuracy needs a labelled reader")
        pred = self.outputs[name][output].reshape(len(self.labels), -1).argmax(1)
        return float(100.0 * np.mean(pred == self.labels))


def _feeds(reader: CalibrationReader) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
    # NOTE: labelled ArrayReaders yield labels alongside feeds; plain readers are rewound when they can be
    if getattr(reader, "labels", None) is not None and hasattr(reader, "iter_labeled"):
        yield from reader.iter_labeled()
        return
    if hasattr(reader, "rewind"):
        reader.rewind()
    while (feed := reader.get_next()) is not None:
        yield feed, None


def _run_one(runner: Runner, reader: CalibrationReader) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    chunks: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    for feed, lab in _feeds(reader):
        for key, value in runner.infer(feed).items():
            chunks.setdefault(key, []).append(np.asarray(value))
        if lab is not None:
            labels.append(lab)
    if not chunks:
        raise ConfigError("the reader gave no feeds")
    outs = {key: np.concatenate(parts) for key, parts in chunks.items()}
    return outs, (np.concatenate(labels) if labels else None)


def run_runners(runners: Sequence[Runner], reader: CalibrationReader) -> RunResults:
    """Feed every batch of ``reader`` to each runner and collect the outputs.

    Runners that are not active are activated for the run and deactivated afterwards; active ones stay
    active. The reader must be rewindable (``rewind()`` or ``iter_labeled()``) to serve several runners.

    Args:
        runners: the runners; their ``name`` keys the results (names must be unique).
        reader: the feeds, e.g. ``make_reader(splits.val, limit=512)``.
    """
    names = [r.name for r in runners]
    if len(set(names)) != len(names):
        raise ConfigError(f"runner names must be unique, got {names}")
    results = RunResults()
    for runner in runners:
        owned = not runner.is_active
        if owned:
            runner.activate()
        try:
            outs, labels = _run_one(runner, reader)
        finally:
            if owned:
                runner.deactivate()
        results.outputs[runner.name] = outs
        if labels is not None:
            results.labels = labels
    return results
