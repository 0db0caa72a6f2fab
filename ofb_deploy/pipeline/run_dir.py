"""``RunDir``: the only code that knows the file names of a run directory.

Every stage reads its inputs and writes its outputs through these paths, so any stage can be re-run on its
own. Layout::

    RUN/
      run.json                      pipeline config (data, model, targets) written by `ofb-deploy run`
      state.json                    per-stage done markers: {stage: {inputs_hash, finished_at, ...}}
      pipeline.json                 `ofb-deploy run` progress: {stage: hash it was started with}
      dense/    model.json, model.safetensors, train_state.pt          (stage "train")
      search/   arch.json, searched.safetensors, search_state.pt        (stage "search")
      slice/    subnet.json, subnet.safetensors, slice_record.json      (stage "slice")
      finetune/ subnet.json, subnet.safetensors, train_state.pt         (stage "finetune")
      export/   {role}.onnx, {role}.fp16.onnx, {role}.int8.onnx, export.json    role: dense | subnet
      build/    {role}.{backend}.{precision}.engine + .json sidecar     (stage "build")
      validate/ validate.json                                           (stage "validate")
      report/   report.json, report.md, *.png                           (stage "report")
      compare/  compare.json, compare.png; seed{S}/{method}/ per method:  (`ofb-deploy compare`)
                result.json, subnet.{json,safetensors}, subnet.onnx, train_state.pt, slice/, widths.json, run/
      sweep/    sweep.json, sweep.png; target{T}/{method}/ as in compare/  (`ofb-deploy sweep`)

A stage is done when ``state.json`` records it with the hash of its inputs; the pipeline skips it while that
hash is unchanged. Writes are atomic (``ofb_deploy.utils.io``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ofb_deploy.errors import ArtifactError
from ofb_deploy.utils.io import atomic_write_json, ensure_dir, read_json

# the files of one compared method's folder (``compare_method_dir`` / ``sweep_method_dir``)
METHOD_FILES = {
    "result": "result.json",  # written last: the method is done
    "widths": "widths.json",  # hand-written widths (magnitude baseline; the input of `slice --arch`)
    "start": "slice",  # the model before fine-tuning (a model folder)
    "onnx": "subnet.onnx",  # the fine-tuned model (subnet.{json,safetensors} in the folder) for ORT timing
    "run": "run",  # a nested run directory (OFB at another seed or target)
    "state": "train_state.pt",
}

STAGES = ("train", "search", "slice", "finetune", "export", "build", "validate", "report")
ROLES = ("dense", "subnet")


class RunDir:
    """Paths and stage markers of one run directory.

    Args:
        root: the run directory.
        create: create it (and fail with one line if it cannot be written) instead of requiring it.
    """

    def __init__(self, root: str | Path, create: bool = False) -> None:
        self.root = Path(root)
        if create:
            ensure_dir(self.root)
        elif not self.root.is_dir():
            raise ArtifactError(f"run directory not found: {self.root}")

    # -- stage folders ----------------------------------------------------------------------------------------
    def stage_dir(self, stage: str, create: bool = False) -> Path:
        """Folder of a stage (``train`` lives in ``dense/``)."""
        if stage not in STAGES:
            raise ArtifactError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        path = self.root / ("dense" if stage == "train" else stage)
        return ensure_dir(path) if create else path

    @property
    def config_path(self) -> Path:
        return self.root / "run.json"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def pipeline_path(self) -> Path:
        """``ofb-deploy run``'s progress: the hash each stage was last started with (to resume or restart it)."""
        return self.root / "pipeline.json"

    @property
    def validate_path(self) -> Path:
        """Validation results (``validate/validate.json``)."""
        return self.stage_dir("validate") / "validate.json"

    @property
    def report_json_path(self) -> Path:
        """The report document (``report/report.json``; schema in docs/report_schema.md)."""
        return self.stage_dir("report") / "report.json"

    @property
    def dense_dir(self) -> Path:
        return self.stage_dir("train")

    @property
    def search_dir(self) -> Path:
        return self.stage_dir("search")

    @property
    def arch_path(self) -> Path:
        """The search result (``arch.json``)."""
        return self.search_dir / "arch.json"

    @property
    def searched_weights_path(self) -> Path:
        """Searched weights and frozen mask scales, dense-shaped (``searched.safetensors``)."""
        return self.search_dir / "searched.safetensors"

    @property
    def slice_dir(self) -> Path:
        return self.stage_dir("slice")

    @property
    def finetune_dir(self) -> Path:
        return self.stage_dir("finetune")

    @property
    def export_dir(self) -> Path:
        return self.stage_dir("export")

    @property
    def engines_dir(self) -> Path:
        return self.stage_dir("build")

    @property
    def validate_dir(self) -> Path:
        return self.stage_dir("validate")

    @property
    def report_dir(self) -> Path:
        return self.stage_dir("report")

    def state_file(self, stage: str) -> Path:
        """Resume checkpoint of a long stage (state dicts only, loaded with ``weights_only=True``)."""
        name = {"train": "train_state.pt", "finetune": "train_state.pt", "search": "search_state.pt"}
        return self.stage_dir(stage) / name.get(stage, f"{stage}_state.pt")

    # -- models by role -----------------------------------------------------------------------------------------
    def model_dir(self, role: str) -> Path:
        """Model folder of a role: ``dense``, or ``subnet`` (fine-tuned if done, else sliced)."""
        if role == "dense":
            return self.dense_dir
        if role == "subnet":
            ft = self.finetune_dir
            return ft if (ft / "subnet.json").is_file() and self.is_done("finetune") else self.slice_dir
        raise ArtifactError(f"unknown model role {role!r}; roles: {', '.join(ROLES)}")

    def onnx_path(self, role: str, precision: str = "fp32") -> Path:
        """ONNX file of a role and precision (``fp32``, ``fp16`` or ``int8``)."""
        suffix = "" if precision == "fp32" else f".{precision}"
        return self.export_dir / f"{role}{suffix}.onnx"

    def engine_path(self, role: str, backend: str, precision: str) -> Path:
        """Serialized engine file; its JSON sidecar is the same path with ``.json`` added."""
        return self.engines_dir / f"{role}.{backend}.{precision}.engine"

    @property
    def calib_dir(self) -> Path:
        """INT8 calibration cache (QDQ ONNX results, TensorRT calibration caches), keyed by content hashes."""
        return self.export_dir / "calib"

    @property
    def timing_cache_path(self) -> Path:
        """Default TensorRT timing cache of the run (shared by its engine builds on one GPU)."""
        return self.engines_dir / "timing.cache"

    # -- baselines (compare, sweep) --------------------------------------------------------------------------------
    @property
    def compare_dir(self) -> Path:
        """``ofb-deploy compare`` results (not a pipeline stage: it reads a finished run)."""
        return self.root / "compare"

    @property
    def compare_json(self) -> Path:
        return self.compare_dir / "compare.json"

    @property
    def compare_plot(self) -> Path:
        return self.compare_dir / "compare.png"

    def compare_method_dir(self, seed: int, method: str) -> Path:
        """Folder of one method at one seed (see ``METHOD_FILES``)."""
        return self.compare_dir / f"seed{seed}" / method

    @property
    def sweep_dir(self) -> Path:
        """``ofb-deploy sweep`` results."""
        return self.root / "sweep"

    @property
    def sweep_json(self) -> Path:
        return self.sweep_dir / "sweep.json"

    @property
    def sweep_plot(self) -> Path:
        return self.sweep_dir / "sweep.png"

    def sweep_method_dir(self, target: str, method: str) -> Path:
        """Folder of one method at one FLOPs target (``target`` as given, e.g. ``0.3``)."""
        return self.sweep_dir / f"target{target}" / method

    def require(self, path: Path, hint: str) -> Path:
        """Return ``path`` or raise a one-line error saying which stage makes it."""
        if not path.exists():
            raise ArtifactError(f"{path} not found: {hint}")
        return path

    # -- config and markers -----------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """The pipeline config (``run.json``), or ``{}`` for a run made stage by stage."""
        return read_json(self.config_path, "run config") if self.config_path.is_file() else {}

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config_path, config)

    def _state(self) -> dict[str, Any]:
        return read_json(self.state_path, "run state") if self.state_path.is_file() else {}

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
        for stage in stages:
            state.pop(stage, None)
        atomic_write_json(self.state_path, state)
