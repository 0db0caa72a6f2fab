"""A run directory's bookkeeping: its config, the data choice it records and the per-stage done markers.
``artifacts.RunDir`` has these methods; it builds the two files' paths (``config_path``, ``state_path``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ArtifactError
from ofb_deploy.utils.io import atomic_write_json, read_json


class StageMarkers:
    """The config and stage markers of a run directory whose ``config_path`` and ``state_path`` are given."""

    config_path: Path
    state_path: Path

    def read_config(self) -> dict[str, Any]:
        """The run's config (the run config), or ``{}`` for a run made stage by stage that recorded nothing yet."""
        if not self.config_path.is_file():
            return {}
        doc = read_json(self.config_path, "run config")
        if not isinstance(doc, dict):
            raise ArtifactError(f"run config {self.config_path} must hold a JSON object, got {type(doc).__name__}")
        return doc

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config_path, config)

    def recorded_data(self) -> Any:
        """The data choice the run config records (a ``DataConfig`` mapping), or ``None``."""
        return self.read_config().get("data")

    def record_data(self, data: dict[str, Any]) -> None:
        """Record the run's data choice in the run config (``ofb_deploy.data.run_data`` decides it)."""
        self.write_config({**self.read_config(), "data": data})

    def _state(self) -> dict[str, Any]:
        if not self.state_path.is_file():
            return {}
        doc = read_json(self.state_path, "run state")
        if not isinstance(doc, dict):
            raise ArtifactError(f"run state {self.state_path} must hold a JSON object, got {type(doc).__name__}")
        return doc

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        """The done marker of a stage, or ``None``."""
        return self._state().get(stage)

    def is_done(self, stage: str, inputs_hash: str | None = None) -> bool:
        """True when ``stage`` finished (and, if given, with the same inputs hash)."""
        record = self.stage_record(stage)
        if record is None:
            return False
        return inputs_hash is None or record.get("inputs_hash") == inputs_hash

    def mark_done(self, stage: str, inputs_hash: str = "", **info: Any) -> None:
        """Record that ``stage`` finished, with the hash of its inputs and any summary numbers."""
        state = self._state()
        state[stage] = {"inputs_hash": inputs_hash, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        atomic_write_json(self.state_path, state)

    def clear_done(self, *stages: str) -> None:
        """Forget the done markers of ``stages`` (they will run again)."""
        state = self._state()
        if any(stage in state for stage in stages):
            for stage in stages:
                state.pop(stage, None)
            atomic_write_json(self.state_path, state)
