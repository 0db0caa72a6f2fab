"""The runner interface every inference backend implements (Polygraphy's ``BaseRunner`` idea).

A runner takes a model object or a zero-argument *loader* and does nothing until ``activate()``; then
``infer(feed)`` maps input names to numpy arrays and returns output names to numpy arrays, and
``deactivate()`` frees the backend. Backends implement ``_activate``, ``_infer`` and ``_deactivate``; the
public methods check state and inputs. Heavy libraries are imported inside ``_activate`` so importing
ofb_deploy never fails; a missing one raises ``BackendUnavailableError`` there.

For latency, ``bind(feed)`` places the inputs where the backend wants them (device memory on a GPU) once,
``run_bound()`` runs on them with outputs left in place, and ``synchronize()`` waits for the device: the timing
loop lives in ``ofb_deploy.timing.latency``, not in runners.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from ofb_deploy.errors import ConfigError, OfbError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``-1`` or a string for a dynamic axis) and numpy dtype of one input or output."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str


class Runner(ABC):
    """Base class of all runners; a context manager that activates on enter.

    Args:
        name: a label for reports (default: the class's ``backend`` name).
    """

    backend: str = "base"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.backend
        self.is_active = False
        self._bound: dict[str, Any] | None = None

    # -- public API ---------------------------------------------------------------------------------------
    def activate(self) -> None:
        """Load the model into the backend (imports the backend library)."""
        if self.is_active:
            raise OfbError(f"runner {self.name} is already active")
        self._activate()
        self.is_active = True

    def deactivate(self) -> None:
        """Free the backend's resources; the runner can be activated again."""
        if self.is_active:
            self._bound = None
            self._deactivate()
            self.is_active = False

    def input_specs(self) -> list[TensorSpec]:
        """The model's inputs."""
        self._require_active()
        return self._input_specs()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch and return host numpy outputs by name.

        Args:
            feed: input name to array; names must match ``input_specs()``.
        """
        self._require_active()
        expected = {spec.name for spec in self._input_specs()}
        if set(feed) != expected:
            raise ConfigError(f"runner {self.name} expects inputs {sorted(expected)}, got {sorted(feed)}")
        return self._infer(feed)

    def bind(self, feed: dict[str, np.ndarray]) -> None:
        """Keep ``feed`` ready for repeated ``run_bound()`` calls (on the device when there is one)."""
        self._require_active()
        self._bound = self._bind(feed)

    def run_bound(self) -> None:
        """Run on the bound inputs; outputs stay where the backend keeps them (for timing)."""
        if self._bound is None:
            raise OfbError(f"runner {self.name}: bind() inputs before run_bound()")
        self._run_bound(self._bound)

    def synchronize(self) -> None:
        """Wait until queued device work is finished (no-op on synchronous backends)."""

    def describe(self) -> dict[str, Any]:
        """Backend, library version, device and precision, for reports and sidecars."""
        return {"backend": self.backend, "name": self.name}

    # -- backend hooks --------------------------------------------------------------------------------------
    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    @abstractmethod
    def _input_specs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _bind(self, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        return dict(feed)

    def _run_bound(self, bound: dict[str, Any]) -> None:
        self._infer(bound)

    # -- helpers --------------------------------------------------------------------------------------------
    def _require_active(self) -> None:
        if not self.is_active:
            raise OfbError(f"runner {self.name} is not active: call activate() or use it in a with-block")

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()
