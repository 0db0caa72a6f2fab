"""``make_bundle``: the folder an edge GPU needs to build, check and run its own engine of a run's model.

Steps: check the inputs (target, precision, batches, quantizer, the model and its data, the output folder) before
any long work; export the target's ONNX forms and parity-check each against PyTorch (``forms``); write the golden
data and ONNX Runtime's reference outputs (``golden``); render ``build.sh`` and copy the standalone scripts
(``render``); add the Triton and DeepStream layouts (``layouts``); write ``README.md`` and ``manifest.json``
(sha256 of every file, source, arch, MACs, the top-1 of each precision measured here). Everything is written into
a temporary folder next to ``--out`` and renamed onto it at the end, so a failed or killed command leaves nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.artifacts import (
    BUNDLE_FILES,
    TRITON_CONFIG,
    TRITON_LABELS,
    TRITON_MODEL_FILES,
    TRITON_NOTE,
    TRITON_VERSION,
    RunDir,
    bundle_file,
    model_stem,
    triton_model_dir,
)
from ofb_deploy.bundle import golden as gold
from ofb_deploy.bundle.commands import DEFAULT_WORKSPACE_MIB, build_plans, trtexec_flags
from ofb_deploy.bundle.forms import make_forms, resolve_quantizer
from ofb_deploy.bundle.layouts import deepstream_config, labels_text, triton_config, triton_note
from ofb_deploy.bundle.render import SCRIPTS, TEMPLATE_NAMES, build_script, now, readme, template
from ofb_deploy.bundle.targets import TargetChoice, parse_target
from ofb_deploy.calibrate import CalibrationSource
from ofb_deploy.choices import Precision, Quantizer, Role
from ofb_deploy.data import dataset_info, model_data, run_data
from ofb_deploy.engines.config import TrtBuildConfig
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.export.run import ParityChecker
from ofb_deploy.models.checkpoint import load_model_dir, read_model_dir_spec
from ofb_deploy.models.flops import count_macs
from ofb_deploy.models.io import OUTPUT_NAME
from ofb_deploy.utils.io import atomic_write_json, atomic_write_text, check_writable, read_json, sha256_file

log = logging.getLogger(__name__)
QUANTIZERS = ("auto", *Quantizer.values())
PRECISION_OF = {"onnx": "fp32", "onnx_fp16": "fp16", "onnx_int8": "int8"}  # BUNDLE_FILES key of each ONNX

FILE_NOTES = {  # what README.md's file table says, by BUNDLE_FILES key (folders: any file below them)
    "onnx": "float32 ONNX in the target's form",
    "onnx_fp16": "float16 ONNX (LayerNorm, Softmax, I/O in float32)",
    "onnx_int8": "Q/DQ INT8 ONNX (explicit quantization)",
    "calib_cache": "TensorRT calibration cache (implicit INT8; build.sh stamps the device's version)",
    "fp32_layers": "decomposed LayerNorm layers build.sh pins to FP32",
    "build_sh": "finds TensorRT, checks its version, builds the engine (--dry-run prints the command)",
    "builder": "Python builder (tensorrt / tensorrt_rtx) where there is no trtexec",
    "runtime": "shared by run.py and check.py: manifest, golden data, TensorRT/ORT runners",
    "run": "latency percentiles per batch",
    "check": "golden check: top-1, agreement, max abs error",
    "readme": "this file",
    "golden_meta": "golden data: encoding, numbers measured here, tolerances",
    "golden_inputs": "golden validation images",
    "golden_labels": "their labels",
    "golden_reference": "ONNX Runtime CPU logits of the float32 ONNX",
    "triton": "Triton model repository",
    "deepstream_config": "DeepStream nvinfer config",
    "deepstream_labels": "nvinfer labels",
}


@dataclass(frozen=True)
class BundleConfig:
    """What ``make_bundle`` writes.

    Args:
        target: ``--target`` (a device target plus any of ``triton``, ``deepstream``, comma-separated).
        precision: ``fp16`` or ``int8``.
        batches: batch sizes the engine profile covers (min, median, max).
        role: ``subnet`` or ``dense`` (a run directory's model).
        quantizer: ``auto`` (ModelOpt where it applies and is installed, else ORT), ``ort`` or ``modelopt``.
        golden_images: validation images the bundle carries for ``check.py``.
        parity_images: validation images each ONNX is compared on against PyTorch.
        workspace_mib: default TensorRT workspace limit of ``build.sh``.
    """

    target: str
    precision: str = Precision.FP16.value
    batches: tuple[int, ...] = (1, 8)
    role: str = Role.SUBNET.value
    quantizer: str = "auto"
    golden_images: int = gold.DEFAULT_GOLDEN_IMAGES
    parity_images: int = 256
    workspace_mib: int = DEFAULT_WORKSPACE_MIB


def _source(source: Path, role: str) -> tuple[Path, Any, RunDir | None]:
    """The model folder, its data and the run (``None`` for a bare model folder)."""
    if model_stem(source) is not None:
        return source, model_data(source), None
    run = RunDir(source)
    model_dir = run.model_dir(role)
    if model_stem(model_dir) is None:
        raise ArtifactError(f"{run.root} has no {role} model ({model_dir}): train, or slice, first")
    return model_dir, run_data(run), run


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArtifactError(f"{out} already exists and is not empty: remove it or give another --out")
    check_writable(out.parent)


@dataclass(frozen=True)
class _Inputs:
    """What ``_checked`` found: the target, the quantizer, the engine profile, the model and its data."""

    choice: TargetChoice
    quantizer: str
    profile: tuple[int, int, int]
    model_dir: Path
    data: Any
    run: RunDir | None
    spec: Any
    info: Any


def _checked(source: Path, out: Path, config: BundleConfig) -> _Inputs:
    """Everything ``make_bundle`` needs to know before any long work, each failure one line."""
    choice = parse_target(config.target)
    if config.precision not in choice.target.precisions:
        raise ConfigError(f"--precision {config.precision!r}: choose from {', '.join(choice.target.precisions)}")
    if config.role not in Role.values():
        raise ConfigError(f"--role {config.role!r}: choose from {', '.join(Role.values())}")
    if config.quantizer not in QUANTIZERS:
        raise ConfigError(f"--quantizer {config.quantizer!r}: choose from {', '.join(QUANTIZERS)}")
    for name in ("golden_images", "parity_images", "workspace_mib"):
        if getattr(config, name) < 1:
            raise ConfigError(
                f"--{name.replace('_mib', '').replace('_', '-')} must be at least 1, got {getattr(config, name)}"
            )
    profile = TrtBuildConfig(batches=config.batches).profile
    _check_out(out)
    model_dir, data, run = _source(Path(source), config.role)
    spec = read_model_dir_spec(model_dir)
    info = dataset_info(data)
    if info.num_classes != spec.num_classes:
        raise ConfigError(f"{model_dir} has {spec.num_classes} classes, its data {info.num_classes}")
    quantizer = resolve_quantizer(choice.target, config.quantizer) if config.precision == "int8" else "none"
    return _Inputs(choice, quantizer, profile, model_dir, data, run, spec, info)


def make_bundle(source: Path, out: Path, config: BundleConfig) -> dict[str, Any]:
    """Write a bundle of ``source``'s model for ``config.target`` into ``out``; return its manifest.

    Args:
        source: a run directory (its ``config.role`` model), or a model folder.
        out: the bundle folder (must not exist, or be empty).
        config: what to write.
    """
    out = Path(out)
    inputs = _checked(Path(source), out, config)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        doc = _write(staging, inputs, config)
        doc["source"]["path"] = str(source)
        _finish(staging, doc)
        if out.is_dir():
            out.rmdir()  # NOTE: empty (checked above); os.replace cannot rename onto a directory
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("bundle %s: %s %s, %d files", out, doc["spelling"], config.precision, len(doc["files"]))
    return doc


def _write(staging: Path, inputs: _Inputs, config: BundleConfig) -> dict[str, Any]:
    choice, quantizer, profile, model_dir = inputs.choice, inputs.quantizer, inputs.profile, inputs.model_dir
    data, run, spec = inputs.data, inputs.run, inputs.spec
    target = choice.target
    model = load_model_dir(model_dir).eval()
    parity = ParityChecker(model, data, config.parity_images)
    calibration = lambda: CalibrationSource.from_data(data, spec, num_images=data.calib_size, seed=data.seed)  # noqa: E731
    cache = run.calib_dir if run is not None else None
    with tempfile.TemporaryDirectory(prefix="ofb-bundle-") as work:
        forms = make_forms(model, target, config.precision, quantizer, Path(work), parity, calibration, cache)
        high = (forms["int8"] or {}).get("high_precision", "fp32")
        plans = build_plans(target, config.precision, high)
        keys = {p.onnx for p in plans} | {p.check_onnx for p in plans}
        keys |= {"calib_cache"} if any(p.mode == "int8-implicit" for p in plans) else set()
        for key in sorted(keys):
            _copy(forms["paths"][key], bundle_file(staging, key))
        if target.decomposed_layernorm:
            spec_text = ",".join(f"{name}:fp32" for name in forms["fp32_layers"])
            atomic_write_text(bundle_file(staging, "fp32_layers"), spec_text + "\n")
        golden = _golden(staging, forms["paths"], keys, data, spec, config)
    io = {"input": _input_name(forms), "chw": (spec.in_chans, spec.img_size, spec.img_size)}
    role = config.role if run is not None else "model folder"
    name = _model_name(spec, config.role if run is not None else model_stem(model_dir) or "model")
    triton_model = name if "triton" in choice.layouts and target.library == "tensorrt" else None
    script = build_script(target, config.precision, plans, io, profile, config.workspace_mib, triton_model)
    _write_script(bundle_file(staging, "build_sh"), script)
    for key in SCRIPTS:
        atomic_write_text(bundle_file(staging, key), template(TEMPLATE_NAMES[key]))
    dry = {p.mode: " ".join(["trtexec", *trtexec_flags(target, p, io["input"], io["chw"], profile,
                                                       config.workspace_mib)]) for p in plans}  # fmt: skip
    _layouts(staging, choice, plans[0], name, spec, io, profile, inputs.info)
    return {
        "schema_version": 1,
        "created_at": now(),
        "model_name": name,
        "target": {**target.__dict__, "accepts": [list(v) for v in target.accepts]},
        "layouts": list(choice.layouts),
        "spelling": choice.spelling,
        "precision": config.precision,
        "batches": list(config.batches),
        "profile": list(profile),
        "default_mode": plans[0].mode,
        "plans": {
            p.mode: {
                "onnx": p.onnx,
                "check_onnx": p.check_onnx,
                "trtexec": list(p.flags),
                "builder": list(p.builder),
                "dry_run": dry[p.mode],
            }
            for p in plans
        },
        "quantization": forms["int8"],
        "source": {"path": "", "role": role, "model_dir": str(model_dir), "data": data.to_dict()},
        "arch": spec.to_dict(),
        "macs": count_macs(spec).total,
        "onnx": {k: v for k, v in forms["onnx"].items() if k in keys},
        "top1_ort_cpu": {PRECISION_OF[k]: v["top1"] for k, v in golden["measured"].items()},
        "run_top1": _run_top1(run, config.role),
        "golden": golden,
        "layout": dict(BUNDLE_FILES),
    }


def _input_name(forms: dict[str, Any]) -> str:
    return next(iter(forms["onnx"]["onnx"]["inputs"]))


def _model_name(spec: Any, role: str) -> str:
    raw = f"{spec.base_model}_{role}"
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in raw)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write_script(path: Path, text: str) -> None:
    atomic_write_text(path, text)
    path.chmod(0o755)


def _golden(staging: Path, paths: dict[str, Path], keys: set[str], data: Any, spec: Any, config: BundleConfig) -> dict:
    """Golden images (encoded), labels, the fp32 reference; each shipped ONNX measured on them; tolerances."""
    images, labels = gold.golden_images(data, spec, config.golden_images)
    encoded, encoding = gold.encode_images(images, spec.mean, spec.std)
    reference = gold.ort_logits(paths["onnx"], images)
    measured = {}
    for key in sorted(k for k in keys if k.startswith("onnx")):
        logits = reference if key == "onnx" else gold.ort_logits(paths[key], images)
        measured[key] = gold.measure(logits, reference, labels)
    check_key = "onnx_int8" if config.precision == "int8" else "onnx_fp16"
    for key, array in (("golden_inputs", encoded), ("golden_labels", labels), ("golden_reference", reference)):
        path = bundle_file(staging, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npz":  # the images compress (Fashion-MNIST: 2.3x); the logits do not
            np.savez_compressed(path, array=np.ascontiguousarray(array))
        else:
            np.save(path, np.ascontiguousarray(array), allow_pickle=False)
    doc = {
        "images": int(len(images)),
        "encoding": encoding,
        "input_shape": [spec.in_chans, spec.img_size, spec.img_size],
        "num_classes": spec.num_classes,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "split": "val (evenly spaced over the split)",
        "reference": "ONNX Runtime CPU on the float32 ONNX of this bundle's form",
        "measured": measured,
        "tolerances": gold.tolerances(config.precision, measured[check_key], reference),
    }
    atomic_write_json(bundle_file(staging, "golden_meta"), doc)
    return doc


def _layouts(staging: Path, choice: TargetChoice, plan: Any, name: str, spec: Any, io: dict, profile: tuple,
             info: Any) -> None:  # fmt: skip
    classes = list(info.classes) or None
    if "triton" in choice.layouts:
        folder = triton_model_dir(staging, name)
        platform = "tensorrt_plan" if choice.target.library == "tensorrt" else "onnxruntime_onnx"
        version = folder / TRITON_VERSION
        version.mkdir(parents=True)
        atomic_write_text(folder / TRITON_CONFIG, triton_config(name, platform, spec, io["input"], OUTPUT_NAME,
                                                                profile[2]))  # fmt: skip
        atomic_write_text(folder / TRITON_LABELS, labels_text(spec.num_classes, classes))
        if platform == "onnxruntime_onnx":
            _copy(bundle_file(staging, plan.check_onnx), version / TRITON_MODEL_FILES[platform])
        atomic_write_text(version / TRITON_NOTE, triton_note(platform))
    if "deepstream" in choice.layouts:
        mode = {"fp16": 2, "int8": 1}[plan.mode.split("-")[0]]
        text = deepstream_config(
            spec,
            onnx_key=plan.onnx,
            network_mode=mode,
            batch=profile[2],
            output_name=OUTPUT_NAME,
            calib=plan.mode == "int8-implicit",
            implicit_possible=choice.target.calib_cache,
        )
        atomic_write_text(bundle_file(staging, "deepstream_config"), text)
        atomic_write_text(bundle_file(staging, "deepstream_labels"), labels_text(spec.num_classes, classes, ";"))


def _run_top1(run: RunDir | None, role: str) -> dict[str, float]:
    """The run's own top-1 of ``role`` (PyTorch and each ORT CPU engine) from ``RunDir.validate_path``, if any."""
    if run is None or not run.validate_path.is_file():
        return {}
    try:
        doc = read_json(run.validate_path, "validation results")
        found = {"torch": doc["models"][role]["top1"]}
        for entry in doc.get("engines", []):
            if entry.get("role") == role and entry.get("backend") == "ort-cpu" and "top1" in entry:
                found[f"ort-cpu {entry['precision']}"] = entry["top1"]
        return found
    except (KeyError, TypeError, ConfigError, ArtifactError):
        return {}


def _finish(staging: Path, doc: dict[str, Any]) -> None:
    """README (with the file table), then the manifest with the sha256 of every other file; readable permissions."""
    for path in [staging, *staging.rglob("*")]:
        # NOTE: temporary files and folders are created private (0600/0700); a bundle is copied to devices and
        # mounted into containers (Triton, DeepStream) that run as other users
        path.chmod(0o755 if path.is_dir() or path.name == BUNDLE_FILES["build_sh"] else 0o644)
    doc["files"] = _hashes(staging)
    notes = {BUNDLE_FILES[key]: text for key, text in FILE_NOTES.items()}
    atomic_write_text(bundle_file(staging, "readme"), readme(doc, notes))
    doc["files"] = _hashes(staging)
    atomic_write_json(bundle_file(staging, "manifest"), doc)
    for key in ("readme", "manifest"):
        bundle_file(staging, key).chmod(0o644)


def _hashes(root: Path) -> dict[str, dict[str, Any]]:
    manifest = BUNDLE_FILES["manifest"]
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != manifest)
    return {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}
