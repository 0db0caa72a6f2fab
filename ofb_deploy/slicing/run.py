"""The slice stage: read the search output (or a hand-written width file), write the subnet model folder.

``RUN/slice/`` holds ``subnet.json`` (``{"arch": ArchSpec, "source_model", "flops", "params", ...}``),
``subnet.safetensors`` and ``slice_record.json`` (the kept indices, replayable with ``slice_subnet``). The
folder is a normal model folder: ``load_subnet`` / ``create_model("local-dir:...")`` rebuild it with plain
``OfbViT`` / ``OfbSwin`` code and no search code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ofb_deploy.errors import ArtifactError, ConfigError, ModelError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.checkpoint import load_model_dir, read_state_dict, save_model_dir
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.models.registry import create_model
from ofb_deploy.pipeline.run_dir import RunDir
from ofb_deploy.slicing.align import align_record
from ofb_deploy.slicing.handwritten import load_counts, record_from_counts
from ofb_deploy.slicing.record import SliceRecord
from ofb_deploy.slicing.slice import slice_subnet, split_scales
from ofb_deploy.utils.io import read_json, sha256_file, sha256_json

log = logging.getLogger(__name__)
SUBNET_STEM = "subnet"
RECORD_NAME = "slice_record.json"


def save_subnet(
    model: nn.Module,
    record: SliceRecord,
    out_dir: str | Path,
    source_model: str,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``subnet.json``, ``subnet.safetensors`` and ``slice_record.json``; return the summary.

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
    record.save(out_dir / RECORD_NAME)
    save_model_dir(model, out_dir, stem=SUBNET_STEM, meta={**summary, **(meta or {})})
    return summary


def load_subnet(folder: str | Path) -> nn.Module:
    """Rebuild a saved subnet (a plain ``OfbViT`` or ``OfbSwin``, in eval mode) from its folder; no search code.

    Args:
        folder: a folder holding ``subnet.json`` + ``subnet.safetensors`` (``RUN/slice``, ``RUN/finetune``).
    """
    folder = Path(folder)
    if not (folder / f"{SUBNET_STEM}.json").is_file():
        raise ArtifactError(f"{folder} holds no {SUBNET_STEM}.json (run `ofb-deploy slice` first)")
    return load_model_dir(folder).eval()


def slice_run(run_dir: RunDir, align: int = 1) -> dict[str, Any]:
    """Slice the searched subnet of a run into ``RUN/slice/``.

    Args:
        run_dir: the run (needs ``search/arch.json`` and ``search/searched.safetensors``).
        align: round widths up to this multiple (1, 8, 16 or 64).
    """
    arch_path = run_dir.require(run_dir.arch_path, "run `ofb-deploy search` first")
    weights_path = run_dir.require(run_dir.searched_weights_path, "run `ofb-deploy search` first")
    arch = read_json(arch_path, "search result")
    record = SliceRecord.from_arch(arch, doc=str(arch_path))
    weights, scales = split_scales(read_state_dict(weights_path))
    record = align_record(record, weights, align, scales or None)
    model = slice_subnet(weights, record, scales or None)
    out = run_dir.stage_dir("slice", create=True)
    summary = save_subnet(model, record, out, source_model=f"{run_dir.root}/search", meta={"search": _brief(arch)})
    inputs = sha256_json([sha256_file(arch_path), sha256_file(weights_path), align])
    if not run_dir.is_done("slice", inputs):  # a different subnet: an earlier fine-tune no longer applies
        run_dir.clear_done("finetune")
    run_dir.mark_done("slice", inputs, **{k: summary[k] for k in ("flops", "params", "align")})
    log.info(
        "sliced %s: %.2f MMACs (dense %.2f)",
        record.dense_arch.base_model,
        summary["flops"] / 1e6,
        summary["dense_flops"] / 1e6,
    )
    return summary


def _brief(arch: dict[str, Any]) -> dict[str, Any]:
    keys = ("target_flops", "flops", "converged", "seed", "epochs", "data")
    return {k: arch[k] for k in keys if k in arch}


def load_dense(checkpoint: str | Path, model: str | None = None) -> tuple[ArchSpec, dict[str, torch.Tensor]]:
    """A dense model's spec and weights from a model folder, or a weights file plus a registry name.

    Args:
        checkpoint: model folder (``model.json`` + safetensors) or a ``.safetensors``/``.pth`` file.
        model: registry name, needed (and only used) when ``checkpoint`` is a file.
    """
    path = Path(checkpoint)
    if path.is_dir():
        dense = load_model_dir(path)
    elif model is None:
        raise ConfigError(f"{path} is a weights file: say which model it holds with --model NAME")
    else:
        state = read_state_dict(path)
        head = state.get("head.weight", state.get("head.fc.weight"))  # ViT, Swin
        classes = int(head.shape[0]) if head is not None else None
        chans = state.get("patch_embed.proj.weight")
        dense = create_model(model, num_classes=classes, in_chans=int(chans.shape[1]) if chans is not None else None)
        dense.load_state_dict(_checked(dense, state, path))
    return dense.spec, {k: v.detach() for k, v in dense.state_dict().items()}


def _checked(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    own = model.state_dict()
    for key, value in own.items():
        if key not in state or tuple(state[key].shape) != tuple(value.shape):
            got = tuple(state[key].shape) if key in state else "missing"
            raise ModelError(f"{path} does not fit {model.spec.base_model}: {key} is {got}, needs {tuple(value.shape)}")
    return {k: state[k] for k in own}


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
            ``"stage_dims": [...]`` instead of ``embed_dim``).
        checkpoint: dense model folder, or weights file with ``model``.
        out_dir: where ``subnet.json``/``subnet.safetensors``/``slice_record.json`` go.
        model: registry name when ``checkpoint`` is a weights file.
        align: round widths up to this multiple (1, 8, 16 or 64).
    """
    dense, state = load_dense(checkpoint, model)
    counts = load_counts(arch_file, dense)
    record = align_record(record_from_counts(counts, state, dense), state, align)
    sub = slice_subnet(state, record)
    return save_subnet(sub, record, out_dir, source_model=str(checkpoint), meta={"arch_file": str(arch_file)})
