"""The export stage: ONNX files of a run's models (or of one model folder) with parity against PyTorch.

Each ONNX is written to a temporary file, checked (``check_onnx``), run in ONNX Runtime on real images from the
model's data and compared with eager PyTorch (max, mean and p99 abs error, cosine, top-1 agreement). Only a
file within tolerance is renamed into place; otherwise ``ParityError`` and no artifact.
``--fp16`` adds the float16 ONNX, ``--int8`` the QDQ ONNX (``ofb_deploy.calibrate``: ONNX Runtime static
quantization, or NVIDIA ModelOpt with ``--quantizer modelopt``); the numbers go to the export record
(``artifacts.export_record``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ofb_deploy.artifacts import ROLES, RunDir, calib_cache_dir, export_record, model_onnx, model_stem
from ofb_deploy.calibrate import CalibrationSource, quantize_qdq
from ofb_deploy.calibrate.modelopt import modelopt_version, quantize_modelopt
from ofb_deploy.choices import Quantizer
from ofb_deploy.data import as_config, model_data, run_data
from ofb_deploy.engines.ort import OrtRunner
from ofb_deploy.engines.outputs import run_runners
from ofb_deploy.engines.torch_runner import TorchRunner
from ofb_deploy.errors import ArtifactError, ParityError
from ofb_deploy.export.config import PARITY_IMAGES, ExportConfig
from ofb_deploy.models.checkpoint import load_model_dir, read_model_dir_spec
from ofb_deploy.onnxtools.export import MIN_OPSET, check_onnx, convert_fp16, export_onnx
from ofb_deploy.onnxtools.parity import compare_outputs
from ofb_deploy.utils.io import atomic_path, atomic_write_json, read_json, sha256_file, sha256_json

log = logging.getLogger(__name__)

# Parity tolerances per precision (compare_outputs keywords). fp32 differs from eager torch only by kernel
# order; fp16 and int8 are judged by agreement, since their logit errors scale with the logits.
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-3, "min_cosine": 0.99999, "min_top1": 0.99},
    "fp16": {"min_cosine": 0.999, "min_top1": 0.95},
    "int8": {"min_cosine": 0.98, "min_top1": 0.90},
}


class ParityChecker:
    """Eager-PyTorch reference outputs on real images, computed once, and checks of ONNX files against them.

    Args:
        model: the fp32 ``OfbViT``.
        data: the model's data (a ``DataConfig`` or a name).
        images: how many validation images to compare on.
    """

    def __init__(self, model: Any, data: Any, images: int | None = PARITY_IMAGES) -> None:
        from ofb_deploy.data import build_splits, make_reader  # lazy: the data sets import torch

        splits = build_splits(as_config(data), model.spec, train_augment=False)
        self.reader = make_reader(splits.val, batch_size=32, limit=images)
        self.reference = run_runners([TorchRunner(model, name="torch")], self.reader).outputs["torch"]

    def check(self, onnx_path: Path, precision: str, what: str) -> dict[str, Any]:
        """Compare ONNX Runtime (CPU) on ``onnx_path`` with the reference; raise ``ParityError`` when over tolerance."""
        outputs = run_runners([OrtRunner(onnx_path, precision=precision, name="onnx")], self.reader).outputs["onnx"]
        report = compare_outputs(self.reference, outputs, **TOLERANCES[precision])
        log.info("%s %s parity: %s", what, precision, report.summary())
        if not report.passed:
            raise ParityError(f"{what} {precision} ONNX differs from PyTorch: {'; '.join(report.failures)}")
        return report.to_dict()


def _checked_write(path: Path, make: Callable[[Path], dict], parity: ParityChecker, precision: str, what: str) -> dict:
    # NOTE: the file is made and judged under a temporary name; only a passing file is renamed into place
    with atomic_path(path) as tmp:
        info = make(tmp)
        report = parity.check(tmp, precision, what)
    return {"path": str(path), "sha256": sha256_file(path), "check": info, "parity": report}


def export_model(
    model_dir: Path,
    paths: dict[str, Path],
    *,
    opset: int = MIN_OPSET,
    data: Any = None,
    parity_images: int | None = PARITY_IMAGES,
    calib_images: int | None = None,
    cache_dir: Path | None = None,
    reuse_fp32: bool = False,
    quantizer: str = "ort",
) -> dict[str, Any]:
    """Export one model folder to the ONNX files named in ``paths`` (keys ``fp32`` and optional ``fp16``/``int8``).

    Args:
        model_dir: a model folder (``artifacts.MODEL_STEMS``).
        paths: precision -> destination; fp16 and int8 are derived from the fp32 file.
        opset: ONNX opset (>= 17).
        data: the model's data for parity and calibration (default: ``data.model_data(model_dir)``).
        parity_images: validation images compared against PyTorch.
        calib_images: calibration images for int8 (default: the data config's ``calib_size``).
        cache_dir: where calibration results are cached (int8).
        reuse_fp32: keep an existing fp32 file (its parity is in the export record) and only derive the others.
        quantizer: ``ort`` (ONNX Runtime static quantization) or ``modelopt`` (NVIDIA ModelOpt's ONNX PTQ).
    """
    model = load_model_dir(model_dir).eval()
    data = model_data(model_dir) if data is None else as_config(data)
    parity = ParityChecker(model, data, parity_images)
    what = str(model_dir)
    result = {"model_dir": str(model_dir), "arch": model.spec.to_dict()}
    if reuse_fp32 and paths["fp32"].is_file():
        result["fp32"] = {"path": str(paths["fp32"]), "sha256": sha256_file(paths["fp32"]), "reused": True}
    else:
        export = lambda tmp: export_onnx(model, tmp, opset=opset)  # noqa: E731
        result["fp32"] = _checked_write(paths["fp32"], export, parity, "fp32", what)
    if "fp16" in paths:
        result["fp16"] = _checked_write(
            paths["fp16"], lambda tmp: convert_fp16(paths["fp32"], tmp), parity, "fp16", what
        )
    if "int8" in paths:
        n_calib = calib_images or getattr(data, "calib_size", 512)
        source = CalibrationSource.from_data(data, model.spec, num_images=n_calib, seed=getattr(data, "seed", 0))
        make_int8 = lambda tmp: quantize_int8(paths["fp32"], tmp, source, quantizer, cache_dir)  # noqa: E731
        result["int8"] = _checked_write(paths["int8"], make_int8, parity, "int8", what)
    return result


def quantize_int8(
    fp32: Path,
    out: Path,
    source: Any,
    quantizer: str = "ort",
    cache_dir: Path | None = None,
    high_precision: str = "fp32",
    require_layernorm: bool = True,
) -> dict[str, Any]:
    """Write the QDQ INT8 ONNX of ``fp32`` with ``quantizer``; ``check_onnx``'s summary plus the quantization record.

    Args:
        fp32: the float32 ONNX.
        out: destination (the caller renames it into place after the parity check).
        source: a ``CalibrationSource``.
        quantizer: ``ort`` or ``modelopt``.
        cache_dir: where calibration results are cached.
        high_precision: ModelOpt only: ``fp32`` or ``fp16`` for the layers it leaves unquantized.
        require_layernorm: ``check_onnx``'s check that LayerNorm is one op (off for a decomposed LayerNorm).
    """
    if Quantizer(quantizer) is Quantizer.MODELOPT:
        info = quantize_modelopt(fp32, out, source, high_precision=high_precision, cache_dir=cache_dir)
    else:
        info = {"quantizer": "ort", **quantize_qdq(fp32, out, source, cache_dir=cache_dir)}
    return {**check_onnx(out, require_layernorm=require_layernorm), "quantization": info}


def _roles(run_dir: RunDir) -> list[str]:
    roles = [role for role in ROLES if model_stem(run_dir.model_dir(role)) is not None]
    if not roles:
        raise ArtifactError(f"{run_dir.root} has no dense/ or slice/ model: run `ofb-deploy train` or `slice` first")
    return roles


def export_run(run_dir: RunDir, config: ExportConfig | None = None, **options: Any) -> dict:
    """Export every model role the run has (``dense``, ``subnet``) to ``RunDir.onnx_path``; write the record.

    Args:
        run_dir: the run directory.
        config: what to write (``ExportConfig``: opset, fp16, int8, parity images; default its defaults).
        **options: ``ExportConfig`` fields overriding ``config`` (``int8=True``).
    """
    config = (config or ExportConfig()).replace(**options)
    opset, fp16, int8, parity_images = config.opset, config.fp16, config.int8, config.parity_images
    _check_quantizer(config)
    doc: dict[str, Any] = {"schema_version": 1, "opset": opset, "exporter": "torch.onnx.export(dynamo=True)"}
    doc["tolerances"] = TOLERANCES
    hashes = {}
    roles, data = _roles(run_dir), run_data(run_dir)
    for role in roles:
        model_dir = run_dir.model_dir(role)
        precisions = ["fp32"] + (["fp16"] if fp16 else []) + (["int8"] if int8 else [])
        paths = {p: run_dir.onnx_path(role, p) for p in precisions}
        doc[role] = export_model(
            model_dir,
            paths,
            opset=opset,
            data=data,
            parity_images=parity_images,
            cache_dir=run_dir.calib_dir,
            quantizer=config.quantizer,
        )
        hashes[role] = {p: doc[role][p]["sha256"] for p in precisions}
    atomic_write_json(run_dir.export_record_path, doc)
    summary = {role: {p: doc[role][p]["parity"]["top1_agreement"] for p in hashes[role]} for role in hashes}
    run_dir.mark_done("export", sha256_json({"opset": opset, "onnx": hashes}), top1_agreement=summary)
    return doc


def _check_quantizer(config: ExportConfig) -> None:
    """ModelOpt missing is a one-line error before any export work (only when INT8 is asked for)."""
    if config.int8 and config.quantizer == "modelopt":
        modelopt_version()


def add_precision(run_dir: RunDir, role: str, precision: str) -> Path:
    """Derive the ``fp16`` or ``int8`` ONNX of ``role`` from its fp32 ONNX (with parity); merge the export record.

    Args:
        run_dir: the run directory (the fp32 ONNX must exist).
        role: ``dense`` or ``subnet``.
        precision: ``fp16`` or ``int8``.
    """
    fp32 = run_dir.require(run_dir.onnx_path(role, "fp32"), "run `ofb-deploy export RUN_DIR` first")
    target = run_dir.onnx_path(role, precision)
    model_dir = run_dir.model_dir(role)
    paths = {"fp32": fp32, precision: target}
    result = export_model(model_dir, paths, data=run_data(run_dir), cache_dir=run_dir.calib_dir, reuse_fp32=True)
    doc_path = run_dir.export_record_path
    doc = read_json(doc_path, "export record") if doc_path.is_file() else {"schema_version": 1}
    doc.setdefault(role, {})[precision] = result[precision]
    atomic_write_json(doc_path, doc)
    return target


def export_model_dir(
    model_dir: Path, out_dir: Path | None = None, config: ExportConfig | None = None, **options: Any
) -> dict:
    """Export a model folder (a run's ``dense``, ``slice`` or ``finetune`` folder) to ``artifacts.model_onnx``.

    Args:
        model_dir: the model folder.
        out_dir: destination folder (default: ``model_dir`` itself).
        config: what to write (``ExportConfig``).
        **options: ``ExportConfig`` fields overriding ``config``.
    """
    config = (config or ExportConfig()).replace(**options)
    opset, fp16, int8, parity_images = config.opset, config.fp16, config.int8, config.parity_images
    _check_quantizer(config)
    model_dir = Path(model_dir)
    read_model_dir_spec(model_dir)  # fails with one line on a folder that is not a model
    stem = model_stem(model_dir)
    out = Path(out_dir) if out_dir is not None else model_dir
    precisions = ["fp32"] + (["fp16"] if fp16 else []) + (["int8"] if int8 else [])
    paths = {p: model_onnx(out, stem, p) for p in precisions}
    doc = {"schema_version": 1, "opset": opset, "exporter": "torch.onnx.export(dynamo=True)", "tolerances": TOLERANCES}
    doc[stem] = export_model(
        model_dir, paths, opset=opset, parity_images=parity_images, cache_dir=calib_cache_dir(out),
        quantizer=config.quantizer,
    )  # fmt: skip
    atomic_write_json(export_record(out), doc)
    return doc
