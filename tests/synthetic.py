"""Test helpers: a random but valid search output (``RunDir.arch_path`` and ``RunDir.searched_weights_path``).

Slicing, export and engine tests need a searched run without paying for a search. ``random_search`` draws
random dense weights (larger than timm's init, so activations and logits are not all near zero), a random
architecture inside the OFB search space and random positive scales for the kept units (zero for the dropped
ones, as the search writes them). ``synthetic_table`` is a latency table from a made-up cost law.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ofb_deploy.artifacts import RunDir
from ofb_deploy.models import get_arch_spec
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.checkpoint import save_state_dict
from ofb_deploy.models.flops import count_macs, count_params
from ofb_deploy.models.registry import build_model
from ofb_deploy.models.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates
from ofb_deploy.profile.table import LatencyTable, arch_key
from ofb_deploy.slicing.record import BlockRecord, SliceRecord
from ofb_deploy.utils.io import atomic_write_json


def _subset(n: int, low: int, gen: torch.Generator) -> tuple[int, ...]:
    k = int(torch.randint(max(1, low), n + 1, (1,), generator=gen))
    return tuple(sorted(torch.randperm(n, generator=gen)[:k].tolist()))


def random_weights(spec: ArchSpec, gen: torch.Generator, std: float = 0.05) -> dict[str, torch.Tensor]:
    """Dense weights with every tensor random (LayerNorm gains around 1)."""
    state = build_model(spec).state_dict()
    out = {}
    for key, value in state.items():
        noise = torch.randn(value.shape, generator=gen)
        out[key] = (
            1.0 + 0.2 * noise if key.endswith("norm1.weight") or "norm" in key and "weight" in key else std * noise
        )
    return out


def random_record(spec: ArchSpec, gen: torch.Generator) -> SliceRecord:
    """A random subnet: at least half of every stage's embed width, any head/channel/neuron subsets."""
    stages = tuple(_subset(width, width // 2, gen) for width in spec.stage_widths)
    blocks = []
    for h, d, m in zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True):
        heads = _subset(h, 1, gen)
        width = len(_subset(d, 1, gen))
        chans = tuple(tuple(sorted(torch.randperm(d, generator=gen)[:width].tolist())) for _ in heads)
        blocks.append(BlockRecord(heads, chans, _subset(m, 1, gen)))
    return SliceRecord.from_stages(spec, stages, tuple(blocks))


def random_scales(record: SliceRecord, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Scales in [0.3, 1.2) for kept units, 0 for dropped ones."""
    spec = record.dense_arch

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        return 0.3 + 0.9 * torch.rand(shape, generator=gen)

    scales = {}
    for s, (width, kept) in enumerate(zip(spec.stage_widths, record.stages, strict=True)):
        key = f"scale.{spec.embed_name(s)}"
        scales[key] = torch.zeros(width)
        scales[key][list(kept)] = draw((len(kept),))
    for i, block in enumerate(record.blocks):
        attn = torch.zeros(spec.num_heads[i], spec.head_dim[i])
        for h, chans in zip(block.head_idx, block.channel_idx, strict=True):
            attn[h, list(chans)] = draw((len(chans),))
        mlp = torch.zeros(spec.mlp_hidden[i])
        mlp[list(block.mlp_idx)] = draw((len(block.mlp_idx),))
        p = spec.block_prefix(i)
        scales[f"scale.{p}attn"], scales[f"scale.{p}mlp"] = attn, mlp
    return scales


def random_search(run_dir: RunDir, spec: ArchSpec, seed: int = 0, std: float = 0.05) -> dict[str, Any]:
    """Write a random search result and searched weights into ``run_dir``; return the arch document.

    Args:
        run_dir: the run.
        spec: the dense model's spec.
        seed: seed of every random draw.
        std: standard deviation of the random weights.
    """
    gen = torch.Generator().manual_seed(seed)
    weights = random_weights(spec, gen, std)
    record = random_record(spec, gen)
    scales = random_scales(record, gen)
    sub = record.spec
    arch = {
        "schema_version": 1,
        "base_model": spec.base_model,
        "dense_arch": spec.to_dict(),
        "dense_flops": count_macs(spec).total,
        "target_flops": count_macs(sub).total,
        "flops": count_macs(sub).total,
        "params": count_params(sub),
        "embed_dim": sub.embed_dim,
        "embed_idx": list(record.embed_idx),
        **{k: v for k, v in record.to_dict().items() if k in ("stage_dims", "stage_idx")},
        "blocks": [b.to_dict() for b in record.blocks],
        "converged": True,
        "unconverged": [],
        "seed": seed,
        "synthetic": True,
    }
    run_dir.stage_dir("search", create=True)
    save_state_dict({**weights, **scales}, run_dir.searched_weights_path)
    atomic_write_json(run_dir.arch_path, arch)
    return arch


def synthetic_table(name: str = "test_vit", noise: float = 0.0, key: dict | None = None) -> LatencyTable:
    """A latency table of a test model from a made-up cost law (plus optional noise), no timing involved.

    ``key``: the table's key (default: a minimal one); pass ``profile.measure.table_key(...)`` to seed a cache.
    """
    spec = get_arch_spec(name)
    space = SpaceConfig()
    embeds = embed_candidates(spec.embed_dim, space)
    dims = sorted({d for _, d in attn_candidates(max(spec.num_heads), max(spec.head_dim), space)})
    hiddens = mlp_candidates(max(spec.mlp_hidden), space)
    rng = np.random.default_rng(0)

    def jitter() -> float:
        return float(rng.normal(0, noise))

    attn = {str(h): [[0.01 * e * h * d / 64 + 0.02 * h + jitter() for d in dims] for e in embeds]
            for h in range(1, max(spec.num_heads) + 1)}  # fmt: skip
    mlp = [[0.01 * e * m / 64 + jitter() for m in hiddens] for e in embeds]
    key = key or {"arch": arch_key(spec), "backend": "ort-cpu", "batch": 8, "precision": "fp32", "threads": 1}
    return LatencyTable(key, 0.05, embeds, [0.1 + 0.002 * e for e in embeds], dims, attn, hiddens, mlp, 1.1, 0.02)
