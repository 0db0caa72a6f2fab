"""The search output: ``RunDir.arch_path`` (kept widths and indices) and ``RunDir.searched_weights_path``.

Format (read by slicing): the weights are the dense-shaped state dict after the search plus the frozen final masks
``scale.embed`` (D,), ``scale.blocks.{i}.attn`` (H, d) and ``scale.blocks.{i}.mlp`` (M,), zero on dropped units
(Swin: ``scale.layers.{s}.embed`` per stage and ``scale.layers.{s}.blocks.{j}.attn``/``mlp``, the block's
state-dict prefix). The arch document of a Swin also lists ``stage_dims`` and ``stage_idx`` (kept channels per
stage; ``embed_idx`` is stage 0's). ``load_searched_model`` rebuilds the supernet with every mask final from these
two files, so its forward is exactly the searched model's (slicing's exactness reference).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ofb_deploy.artifacts import RunDir
from ofb_deploy.errors import ArtifactError
from ofb_deploy.models.arch_spec import SCHEMA_VERSION, ArchSpec
from ofb_deploy.models.checkpoint import read_state_dict, save_state_dict
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.models.registry import build_model
from ofb_deploy.search.build import build_supernet
from ofb_deploy.search.masks import ChannelMask, HeadMask
from ofb_deploy.search.supernet import SupernetBase
from ofb_deploy.utils.io import atomic_write_json, read_json


def searched_spec(supernet: SupernetBase) -> ArchSpec:
    """The ``ArchSpec`` of the current alive widths (every mask should be final)."""
    return supernet.spec.with_widths(
        stage_widths=tuple(m.width for m in supernet.stage_masks),
        num_heads=tuple(m.heads for m in supernet.attn_masks),
        head_dim=tuple(m.head_dim for m in supernet.attn_masks),
        mlp_hidden=tuple(m.width for m in supernet.mlp_masks),
    )


def arch_document(supernet: SupernetBase, target_macs: int | None, extra: dict[str, Any]) -> dict[str, Any]:
    """The search result document (``RunDir.arch_path``) of a searched supernet.

    Args:
        supernet: the supernet with every mask final.
        target_macs: the FLOPs target in MACs (``None``: a latency-only search).
        extra: more keys (converged, unconverged, seed, epochs, metrics ...).
    """
    spec = supernet.spec
    sub = searched_spec(supernet)
    blocks = []
    for attn, mlp in zip(supernet.attn_masks, supernet.mlp_masks, strict=True):
        blocks.append(
            {
                "heads": attn.heads,
                "head_dim": attn.head_dim,
                "mlp_hidden": mlp.width,
                "head_idx": attn.head_idx.tolist(),
                "channel_idx": attn.ch_idx.tolist(),
                "mlp_idx": mlp.idx.tolist(),
            }
        )
    stages = {}
    if spec.family == "swin":
        stages = {"stage_dims": list(sub.stage_dims), "stage_idx": [m.idx.tolist() for m in supernet.stage_masks]}
    return {
        "schema_version": SCHEMA_VERSION,
        "base_model": spec.base_model,
        "dense_arch": spec.to_dict(),
        "dense_flops": count_macs(spec).total,
        "target_flops": None if target_macs is None else int(target_macs),
        "flops": count_macs(sub).total,
        "flops_over_target": None if target_macs is None else round(count_macs(sub).total / target_macs, 5),
        "params": count_params(sub),
        "dense_params": count_params(spec),
        "embed_dim": sub.embed_dim,
        "embed_idx": supernet.stage_masks[0].idx.tolist(),
        **stages,
        "blocks": blocks,
        **extra,
    }


def scale_tensors(supernet: SupernetBase) -> dict[str, torch.Tensor]:
    """The frozen mask scales under their output keys."""
    # NOTE: mask names are "embed" (or "layers.{s}.embed"), then each block's prefix + "attn" / "mlp", so the keys
    # follow masks() order
    return {f"scale.{mask.name}": mask.scale for mask in supernet.masks()}


def write_result(supernet: SupernetBase, run_dir: RunDir, doc: dict[str, Any]) -> None:
    """Write the searched weights, then the arch document (both atomically; the document last marks completion)."""
    state = {**supernet.model.state_dict(), **scale_tensors(supernet)}
    save_state_dict(state, run_dir.searched_weights_path)
    atomic_write_json(run_dir.arch_path, doc)


def _set_final(mask: ChannelMask | HeadMask, alive: torch.Tensor, scale: torch.Tensor, candidate: Any) -> None:
    if tuple(scale.shape) != tuple(mask.scale.shape):
        raise ArtifactError(f"scale of {mask.name} has shape {tuple(scale.shape)}, expected {tuple(mask.scale.shape)}")
    mask.alive.copy_(alive)
    mask.scale.copy_(scale)
    mask.candidates = [candidate]
    mask.final = True
    mask.alpha = None
    mask.refresh()


def _alive_from_doc(supernet: SupernetBase, doc: dict[str, Any]) -> list[tuple[torch.Tensor, Any]]:
    spec = supernet.spec
    out: list[tuple[torch.Tensor, Any]] = []
    for width, kept in zip(spec.stage_widths, doc.get("stage_idx") or [doc["embed_idx"]], strict=True):
        embed = torch.zeros(width, dtype=torch.bool)
        embed[kept] = True
        out.append((embed, len(kept)))
    attn, mlp = [], []
    for i, block in enumerate(doc["blocks"]):
        a = torch.zeros(spec.num_heads[i], spec.head_dim[i], dtype=torch.bool)
        for h, chans in zip(block["head_idx"], block["channel_idx"], strict=True):
            a[h, chans] = True
        attn.append((a, (block["heads"], block["head_dim"])))
        m = torch.zeros(spec.mlp_hidden[i], dtype=torch.bool)
        m[block["mlp_idx"]] = True
        mlp.append((m, block["mlp_hidden"]))
    return out + attn + mlp


def load_searched_model(run_dir: RunDir) -> nn.Module:
    """The searched model with its final masks, run through the search's own masked forward (eval mode).

    Args:
        run_dir: a run whose search is done (``RunDir.arch_path`` and ``RunDir.searched_weights_path``).
    """
    search_dir = run_dir.search_dir
    doc = read_json(run_dir.arch_path, "search result")
    try:
        spec = ArchSpec.from_dict(doc["dense_arch"], source=str(run_dir.arch_path))
        state = read_state_dict(run_dir.searched_weights_path)
        model = build_model(spec)
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("scale.")})
        supernet = build_supernet(model)
        scales = scale_tensors(supernet)
        for mask, key, (alive, cand) in zip(supernet.masks(), scales, _alive_from_doc(supernet, doc), strict=True):
            _set_final(mask, alive, state[key], cand)
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as exc:
        raise ArtifactError(f"search result in {search_dir} is malformed: {exc}") from exc
    return supernet.eval()
