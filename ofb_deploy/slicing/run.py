"""The slice stage: read the search output (or a hand-written width file), write the subnet model folder.

``RunDir.slice_dir`` is a model folder with the stem ``subnet`` (its JSON: ``{"arch": ArchSpec, "source_model",
"flops", "params", ...}``) plus the slice record (``artifacts.slice_record``: the kept indices, replayable with
``slice_subnet``). ``load_subnet`` / ``create_model("local-dir:...")`` rebuild it with plain ``OfbViT`` /
``OfbSwin`` code and no search code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from ofb_deploy.artifacts import RunDir, model_json, model_stem, slice_record
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.models.checkpoint import load_dense, load_model_dir, read_state_dict, save_model_dir
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.slicing.align import align_record
from ofb_deploy.slicing.handwritten import load_counts, record_from_counts
from ofb_deploy.slicing.record import SliceRecord
from ofb_deploy.slicing.slice import slice_subnet, split_scales
from ofb_deploy.utils.io import read_json, sha256_file, sha256_json

log = logging.getLogger(__name__)
SUBNET_STEM = "subnet"  # a subnet's model folder uses this stem (artifacts.MODEL_STEMS)


def save_subnet(
    model: nn.Module,
    record: SliceRecord,
    out_dir: str | Path,
    source_model: str,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the subnet's model folder and its slice record into ``out_dir``; return the summary.

    Args:
        model: the sliced model.
        record: its kept indices.
        out_dir: the folder.
        source_model: what the subnet was cut from (a run's search, a checkpoint path ...).
        meta: extra JSON metadata.
    """
    dense = record.dense_arch
    summary = {
        "source_model": source_model,
        "base_model": dense.base_model,
        "flops": count_macs(model.spec).total,
        "params": count_params(model.spec),
        "dense_flops": count_macs(dense).total,
        "dense_params": count_params(dense),
        "embed_dim": model.spec.embed_dim,
        **({"stage_dims": list(model.spec.stage_dims)} if model.spec.family == "swin" else {}),
        "num_heads": list(model.spec.num_heads),
        "head_dim": list(model.spec.head_dim),
        "mlp_hidden": list(model.spec.mlp_hidden),
        "img_size": model.spec.img_size,
        "in_chans": model.spec.in_chans,
        "num_classes": model.spec.num_classes,
        "align": record.align,
    }
    if "align" in record.info:
        summary["align_flops_change_pct"] = record.info["align"]["flops_change_pct"]
        summary["flops_before_align"] = record.info["align"]["flops_before"]
    out_dir = Path(out_dir)
    record.save(slice_record(out_dir))
    save_model_dir(model, out_dir, stem=SUBNET_STEM, meta={**summary, **(meta or {})})
    return summary


def load_subnet(folder: str | Path) -> nn.Module:
    """Rebuild a saved subnet (a plain ``OfbViT`` or ``OfbSwin``, in eval mode) from its folder; no search code.

    Args:
        folder: a subnet's model folder (``RunDir.slice_dir``, ``RunDir.finetune_dir``).
    """
    folder = Path(folder)
    if model_stem(folder) != SUBNET_STEM:
        raise ArtifactError(
            f"{folder} holds no subnet ({model_json(folder, SUBNET_STEM).name}): run `ofb-deploy slice`"
        )
    return load_model_dir(folder).eval()


def slice_run(
    run_dir: RunDir,
    align: int = 1,
    *,
    arch: str | Path | None = None,
    checkpoint: str | Path | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Slice the searched subnet of a run, or its dense model to the widths of ``arch``, into ``RunDir.slice_dir``.

    Args:
        run_dir: the run (needs ``RunDir.arch_path`` and ``RunDir.searched_weights_path``, or with ``arch`` a
            dense model).
        align: round widths up to this multiple (``SliceConfig``: 1, 8, 16 or 64).
        arch: a width file (``handwritten.py``; the search's own result is one); units chosen by magnitude.
        checkpoint: with ``arch``: the dense model folder or weights file (default ``RunDir.dense_dir``).
        model: with ``arch``: the registry name of a weights file's model (``models.checkpoint.load_dense``).
    """
    if arch is None:
        if checkpoint is not None or model is not None:
            raise ConfigError("--checkpoint and --model go with --arch: a search result slices its own weights")
        summary, inputs = _slice_searched(run_dir, align)
    else:
        dense = checkpoint if checkpoint is not None else run_dir.dense_dir
        summary = slice_handwritten(arch, dense, run_dir.slice_dir, model=model, align=align)
        inputs = sha256_json([sha256_file(Path(arch)), str(dense), align])
    if not run_dir.is_done("slice", inputs):  # a different subnet: an earlier fine-tune no longer applies
        run_dir.clear_done("finetune")
    run_dir.mark_done("slice", inputs, **{k: summary[k] for k in ("flops", "params", "align")})
    log.info("sliced %s: %.2f MMACs (dense %.2f)", summary["base_model"], summary["flops"] / 1e6,
             summary["dense_flops"] / 1e6)  # fmt: skip
    return summary


def _slice_searched(run_dir: RunDir, align: int) -> tuple[dict[str, Any], str]:
    arch_path = run_dir.require(run_dir.arch_path, "run `ofb-deploy search` first")
    weights_path = run_dir.require(run_dir.searched_weights_path, "run `ofb-deploy search` first")
    arch = read_json(arch_path, "search result")
    record = SliceRecord.from_arch(arch, doc=str(arch_path))
    weights, scales = split_scales(read_state_dict(weights_path))
    record = align_record(record, weights, align, scales or None)
    model = slice_subnet(weights, record, scales or None)
    out = run_dir.stage_dir("slice", create=True)
    summary = save_subnet(model, record, out, source_model=f"{run_dir.root}/search", meta={"search": _brief(arch)})
    return summary, sha256_json([sha256_file(arch_path), sha256_file(weights_path), align])


def _brief(arch: dict[str, Any]) -> dict[str, Any]:
    keys = ("target_flops", "flops", "converged", "seed", "epochs", "data")
    return {k: arch[k] for k in keys if k in arch}


def slice_handwritten(
    arch_file: str | Path,
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    model: str | None = None,
    align: int = 1,
) -> dict[str, Any]:
    """Slice a dense checkpoint to hand-written widths (counts), choosing units by weight magnitude.

    Args:
        arch_file: JSON ``{"embed_dim": n, "blocks": [{"heads", "head_dim", "mlp_hidden"}, ...]}`` (a Swin:
            ``"stage_dims": [...]`` instead of ``embed_dim``), e.g. a copy of a search result (its other keys are
            ignored).
        checkpoint: dense model folder, or weights file with ``model``.
        out_dir: the subnet's model folder (``save_subnet``).
        model: registry name when ``checkpoint`` is a weights file.
        align: round widths up to this multiple (1, 8, 16 or 64).
    """
    dense_model = load_dense(checkpoint, model)
    dense, state = dense_model.spec, {k: v.detach() for k, v in dense_model.state_dict().items()}
    counts = load_counts(arch_file, dense)
    record = align_record(record_from_counts(counts, state, dense), state, align)
    sub = slice_subnet(state, record)
    return save_subnet(sub, record, out_dir, source_model=str(checkpoint), meta={"arch_file": str(arch_file)})
