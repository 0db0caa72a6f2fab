"""Artifact names: ``RunDir`` and the model-folder helpers are the only code that builds an artifact's path.

Every stage reads its inputs and writes its outputs through these paths, so any stage can be re-run on its
own. This module sits at the bottom of the package (it imports ``errors``, ``choices`` and ``utils.io`` only):
stages import it, and it imports no stage. Layout of a run directory::

    RUN/
      run.json                      the run's config, or at least its data choice (``RunDir.recorded_data``)
      state.json                    per-stage done markers: {stage: {inputs_hash, finished_at, ...}}
      pipeline.json                 `ofb-deploy run` progress: {stage: hash it was started with}
      dense/    model.json, model.safetensors, train_state.pt          (stage "train")
      search/   arch.json, searched.safetensors, search_state.pt        (stage "search")
      slice/    subnet.json, subnet.safetensors, slice_record.json      (stage "slice")
      finetune/ subnet.json, subnet.safetensors, train_state.pt         (stage "finetune")
      export/   {role}.onnx, {role}.fp16.onnx, {role}.int8.onnx, export.json, calib/    role: dense | subnet
      build/    {role}.{backend}.{precision}.engine + .json sidecar, timing.cache       (stage "build")
      validate/ validate.json                                           (stage "validate")
      report/   report.json, report.md, *.png                           (stage "report")
      compare/  compare.json, compare.png; seed{S}/{method}/ (``METHOD_FILES``), latency_budgets/{key}.json
      sweep/    sweep.json, sweep.png; target{T}/{method}/ as in compare/  (`ofb-deploy sweep`)

A deployment bundle (``ofb-deploy bundle``, any folder) holds the files of ``BUNDLE_FILES``. A model folder
(``RUN/dense``, ``RUN/slice``, or one anywhere else) holds ``<stem>.json`` and ``<stem>.safetensors`` with ``stem``
one of ``MODEL_STEMS``. A stage is done when ``state.json`` records it with the hash of its inputs; the pipeline
skips it while that hash is unchanged. Writes are atomic (``utils.io``).
"""

from __future__ import annotations

from pathlib import Path

from ofb_deploy.choices import Role, Stage
from ofb_deploy.errors import ArtifactError
from ofb_deploy.markers import StageMarkers
from ofb_deploy.utils.io import check_writable, ensure_dir

STAGES = Stage.values()
ROLES = Role.values()
MODEL_STEMS = ("model", "subnet")  # the stems a model folder may use, looked up in this order
REPORT_PLOTS = ("widths.png", "latency_vs_batch.png", "accuracy_vs_latency.png")

# the files of one compared method's folder (``compare_method_dir`` / ``sweep_method_dir``)
METHOD_FILES = {
    "result": "result.json",  # written last: the method is done
    "widths": "widths.json",  # hand-written widths (uniform baselines; the input of `slice --arch`)
    "start": "slice",  # the model before fine-tuning (a model folder)
    "onnx": "subnet.onnx",  # the fine-tuned model (subnet.{json,safetensors} in the folder) for ORT timing
    "run": "run",  # a nested run directory (OFB at another seed or target)
    "state": "train_state.pt",
}
_STATE_FILES = {"train": "train_state.pt", "finetune": "train_state.pt", "search": "search_state.pt"}


# -- model folders (inside a run or anywhere) ----------------------------------------------------------------------
def model_json(folder: str | Path, stem: str = "model") -> Path:
    """The JSON config of a model folder (``{"arch": ArchSpec, ...metadata}``)."""
    return Path(folder) / f"{stem}.json"


def model_weights(folder: str | Path, stem: str = "model") -> Path:
    """The safetensors weights of a model folder."""
    return Path(folder) / f"{stem}.safetensors"


def model_weight_files(folder: str | Path) -> list[Path]:
    """Every safetensors file of a model folder, sorted (what a fingerprint of the folder's weights covers)."""
    return sorted(Path(folder).glob("*.safetensors"))


def model_stem(folder: str | Path) -> str | None:
    """The stem a model folder uses (``model`` or ``subnet``), or ``None`` when it holds no model."""
    return next((s for s in MODEL_STEMS if model_json(folder, s).is_file()), None)


def model_onnx(folder: str | Path, stem: str = "model", precision: str = "fp32") -> Path:
    """ONNX export of a model folder's model: ``<stem>.onnx``, or ``<stem>.<precision>.onnx`` below fp32."""
    suffix = "" if precision == "fp32" else f".{precision}"
    return Path(folder) / f"{stem}{suffix}.onnx"


def onnx_precision(path: str | Path) -> str:
    """The precision an ONNX file's name says (``model_onnx``): ``fp16``, ``int8`` or ``fp32``."""
    name = Path(path).name
    return next((p for p in ("fp16", "int8") if name.endswith(f".{p}.onnx")), "fp32")


def export_record(folder: str | Path) -> Path:
    """The export record (files, parity numbers) of an export folder."""
    return Path(folder) / "export.json"


def calib_cache_dir(folder: str | Path) -> Path:
    """INT8 calibration caches (QDQ ONNX results, TensorRT calibration caches), keyed by content hashes."""
    return Path(folder) / "calib"


def train_state(folder: str | Path) -> Path:
    """Resume state of a training run writing into ``folder`` (state dicts only, loaded ``weights_only``)."""
    return Path(folder) / _STATE_FILES["train"]


def slice_record(folder: str | Path) -> Path:
    """The kept indices of a sliced model folder (replayable with ``slice_subnet``)."""
    return Path(folder) / "slice_record.json"


# -- engines and caches ----------------------------------------------------------------------------------------------
def engine_name(role: str, backend: str, precision: str) -> str:
    """``{role}.{backend}.{precision}.engine``."""
    return f"{role}.{backend}.{precision}.engine"


def parse_engine_name(path: Path) -> tuple[str, str, str] | None:
    """``(role, backend, precision)`` of an engine file name, or ``None`` for any other file."""
    if path.suffix != ".engine":
        return None
    parts = path.name[: -len(".engine")].split(".")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``: what the engine was built from, with and for."""
    return Path(f"{engine_path}.json")


def runtime_cache_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.runtime.cache``: TensorRT-RTX's specialised kernels for this GPU."""
    return Path(f"{engine_path}.runtime.cache")


def ort_trt_cache_dir(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.trtcache/``: the ONNX Runtime TensorRT EP's engine and timing caches."""
    return Path(f"{engine_path}.trtcache")


def qdq_cache_files(cache_dir: str | Path, key: str) -> tuple[Path, Path]:
    """A cached QDQ ONNX and the JSON describing its calibration."""
    return Path(cache_dir) / f"{key}.onnx", Path(cache_dir) / f"{key}.json"


def trt_calib_cache(cache_dir: str | Path, key: str) -> Path:
    """A TensorRT 10 INT8 calibration cache."""
    return Path(cache_dir) / f"{key}.trtcache"


def qdq_work_files(work_dir: str | Path) -> tuple[Path, Path]:
    """Scratch files of one QDQ calibration: the augmented ONNX and the saved tensor ranges."""
    return Path(work_dir) / "augmented.onnx", Path(work_dir) / "ranges.json"


def latency_table_path(cache_dir: str | Path, model: str, digest: str) -> Path:
    """A cached latency table (``ofb-deploy profile``) of one model and table key."""
    return Path(cache_dir) / f"{model}-{digest}.json"


def profile_graph(work_dir: str | Path, name: str) -> Path:
    """Scratch ONNX of one profiled part or whole model."""
    return Path(work_dir) / f"{name}.onnx"


# -- a deployment bundle (`ofb-deploy bundle`) -----------------------------------------------------------------------
# what the bundle command writes, by role; its build.sh, run.py and check.py read these names from manifest.json
BUNDLE_FILES = {
    "onnx": "model.onnx",  # float32, in the target's form (opset 17 LayerNormalization, or decomposed at 16)
    "onnx_fp16": "model.fp16.onnx",  # float16 with LayerNorm/Softmax/I-O in float32
    "onnx_int8": "model.int8.onnx",  # QDQ (explicit INT8)
    "calib_cache": "calib.cache",  # TensorRT implicit-INT8 calibration cache (TensorRT 8.x/10)
    "fp32_layers": "fp32_layers.txt",  # TensorRT 8.5 fp16/int8: the decomposed LayerNorm layers kept in fp32
    "build_sh": "build.sh",
    "builder": "build_engine.py",  # the Python builder build.sh falls back to without trtexec
    "runtime": "bundle_runtime.py",  # what run.py and check.py share (TensorRT via ctypes CUDA, or ORT)
    "run": "run.py",
    "check": "check.py",
    "golden_inputs": "golden/inputs.npz",
    "golden_labels": "golden/labels.npy",
    "golden_reference": "golden/reference.npy",
    "golden_meta": "golden/golden.json",
    "engine_dir": "engine",  # build.sh writes the engine, its sidecar and the timing cache here on the device
    "triton": "triton",
    "deepstream_config": "deepstream/config_infer.txt",
    "deepstream_labels": "deepstream/labels.txt",
    "manifest": "manifest.json",
    "readme": "README.md",
}
TRITON_CONFIG = "config.pbtxt"
TRITON_LABELS = "labels.txt"
TRITON_NOTE = "README.txt"  # in the version folder: where the engine built on the device goes
TRITON_VERSION = "1"  # Triton model repository: <model>/<version>/<the platform's default model file>
TRITON_MODEL_FILES = {"tensorrt_plan": "model.plan", "onnxruntime_onnx": "model.onnx"}


def bundle_file(root: str | Path, key: str) -> Path:
    """A file of a bundle folder (``BUNDLE_FILES``)."""
    if key not in BUNDLE_FILES:
        raise ArtifactError(f"unknown bundle file {key!r}; files: {', '.join(BUNDLE_FILES)}")
    return Path(root) / BUNDLE_FILES[key]


def triton_model_dir(root: str | Path, model: str) -> Path:
    """``triton/<model>/`` of a bundle: ``config.pbtxt`` and the version folder ``1/``."""
    return bundle_file(root, "triton") / model


# -- the run directory -----------------------------------------------------------------------------------------------
class RunDir(StageMarkers):
    """Paths of one run directory, and (``StageMarkers``) its config, data choice and stage markers.

    Args:
        root: the run directory.
        create: create it now (one line when it cannot be written) instead of requiring it.
        new_ok: it may not exist yet: check now (one line) that it could be written; folders are made on the
            first write (``for_output``).
    """

    def __init__(self, root: str | Path, create: bool = False, *, new_ok: bool = False) -> None:
        self.root = Path(root)
        if create:
            ensure_dir(self.root)
        elif new_ok:
            check_writable(self.root)
        elif not self.root.is_dir():
            raise ArtifactError(f"run directory not found: {self.root}")

    @classmethod
    def for_output(cls, root: str | Path) -> RunDir:
        """A run a command may start here, created on its first write: one that fails on its inputs leaves nothing."""
        return cls(root, new_ok=True)

    # -- stage folders ------------------------------------------------------------------------------------------
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
    def dense_dir(self) -> Path:
        return self.stage_dir("train")

    @property
    def search_dir(self) -> Path:
        return self.stage_dir("search")

    @property
    def arch_path(self) -> Path:
        """The search result: kept widths and indices, metrics, the search config."""
        return self.search_dir / "arch.json"

    @property
    def searched_weights_path(self) -> Path:
        """Searched weights and frozen mask scales, dense-shaped."""
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
    def export_record_path(self) -> Path:
        """What the export stage wrote, with the parity of each file."""
        return export_record(self.export_dir)

    @property
    def engines_dir(self) -> Path:
        return self.stage_dir("build")

    @property
    def validate_path(self) -> Path:
        """Validation results."""
        return self.stage_dir("validate") / "validate.json"

    @property
    def report_dir(self) -> Path:
        return self.stage_dir("report")

    @property
    def report_json_path(self) -> Path:
        """The report document (schema in docs/report_schema.md)."""
        return self.report_dir / "report.json"

    @property
    def report_md_path(self) -> Path:
        """The human report (Markdown, linking the plots)."""
        return self.report_dir / "report.md"

    def report_plot(self, name: str) -> Path:
        """A report plot (``name`` one of ``REPORT_PLOTS``)."""
        if name not in REPORT_PLOTS:
            raise ArtifactError(f"unknown report plot {name!r}; plots: {', '.join(REPORT_PLOTS)}")
        return self.report_dir / name

    def state_file(self, stage: str) -> Path:
        """Resume checkpoint of a long stage (state dicts only, loaded with ``weights_only=True``)."""
        return self.stage_dir(stage) / _STATE_FILES.get(stage, f"{stage}_state.pt")

    # -- models by role -----------------------------------------------------------------------------------------
    def model_dir(self, role: str) -> Path:
        """Model folder of a role: ``dense``, or ``subnet`` (fine-tuned if done, else sliced)."""
        if role == "dense":
            return self.dense_dir
        if role == "subnet":
            ft = self.finetune_dir
            return ft if model_stem(ft) == "subnet" and self.is_done("finetune") else self.slice_dir
        raise ArtifactError(f"unknown model role {role!r}; roles: {', '.join(ROLES)}")

    def onnx_path(self, role: str, precision: str = "fp32") -> Path:
        """ONNX file of a role and precision (``fp32``, ``fp16`` or ``int8``)."""
        return model_onnx(self.export_dir, role, precision)

    def engine_path(self, role: str, backend: str, precision: str) -> Path:
        """Serialized engine file; its JSON sidecar is ``sidecar_path(engine)``."""
        return self.engines_dir / engine_name(role, backend, precision)

    def engine_files(self) -> list[tuple[str, str, str, Path]]:
        """``(role, backend, precision, path)`` of every engine file in the build folder, sorted by name."""
        folder = self.engines_dir
        found = []
        for path in sorted(folder.glob("*.engine")) if folder.is_dir() else []:
            parsed = parse_engine_name(path)
            if parsed is not None:
                found.append((*parsed, path))
        return found

    @property
    def calib_dir(self) -> Path:
        """INT8 calibration cache (QDQ ONNX results, TensorRT calibration caches), keyed by content hashes."""
        return calib_cache_dir(self.export_dir)

    @property
    def timing_cache_path(self) -> Path:
        """Default TensorRT timing cache of the run (shared by its engine builds on one GPU)."""
        return self.engines_dir / "timing.cache"

    # -- baselines (compare, sweep) -----------------------------------------------------------------------------
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

    def latency_budget_path(self, key: str) -> Path:
        """``ofb-latency``'s budget for one OFB architecture, timing setup and table, shared by the seeds."""
        return self.compare_dir / "latency_budgets" / f"{key}.json"

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
