"""Latency tables: round trip, monotone interpolation, the differentiable expectation, a real tiny profile on ORT
CPU, and a latency-targeted search on a test model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.data import DataConfig
from ofb_deploy.models import create_model, get_arch_spec, save_model_dir
from ofb_deploy.profile.table import LatencyTable, arch_key
from ofb_deploy.search import OfbSupernet, SearchConfig, run_search
from ofb_deploy.search.cost import LatencyCost
from ofb_deploy.search.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates


def synthetic_table(name: str = "test_vit", noise: float = 0.0) -> LatencyTable:
    """A table of a test model from a made-up cost law (plus optional noise), no timing involved."""
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
    key = {"arch": arch_key(spec), "backend": "ort-cpu", "batch": 8, "precision": "fp32", "threads": 1}
    return LatencyTable(key, 0.05, embeds, [0.1 + 0.002 * e for e in embeds], dims, attn, hiddens, mlp, 1.1, 0.02)


def test_table_round_trips_and_predicts_the_same(tmp_path: Path) -> None:
    table = synthetic_table()
    path = table.save(tmp_path / "t.json")
    again = LatencyTable.load(path)
    spec = get_arch_spec("test_vit")
    assert again.to_dict() == table.to_dict() and again.digest == table.digest
    assert again.predict(spec) == pytest.approx(table.predict(spec))
    small = spec.replace(embed_dim=24, head_dim=(8, 8), mlp_hidden=(40, 24))  # between grid points
    assert 0 < again.predict(small) < again.predict(spec)
    path.write_text(json.dumps({"schema_version": 1, "key": {}}))
    assert main(["search", str(tmp_path / "r"), "--target-latency", "1ms", "--latency-table", str(path)]) != 0


def test_interpolation_is_monotonic_in_each_width_even_with_noisy_measurements() -> None:
    table = synthetic_table(noise=0.02)
    for e in range(16, 33, 2):
        row = [table.attn(e, 2, d) for d in range(8, 17)]
        assert all(a <= b + 1e-12 for a, b in zip(row, row[1:], strict=False))
        row = [table.mlp(e, m) for m in range(16, 65, 4)]
        assert all(a <= b + 1e-12 for a, b in zip(row, row[1:], strict=False))
    for d in (8, 12, 16):
        col = [table.attn(e, 1, d) for e in range(16, 33, 2)]
        assert all(a <= b + 1e-12 for a, b in zip(col, col[1:], strict=False))
    fixed = [table.fixed(e) for e in range(16, 33)]
    assert all(a <= b + 1e-12 for a, b in zip(fixed, fixed[1:], strict=False))


def test_expected_latency_at_one_hot_alpha_is_the_tables_prediction() -> None:
    torch.manual_seed(0)
    table = synthetic_table("test_vit_rgb")
    net = OfbSupernet(create_model("test_vit_rgb"))
    cost = LatencyCost(net.spec, table)
    picks = {}
    for i, mask in enumerate(net.masks()):
        k = (3 * i + 1) % len(mask.candidates)
        mask.alpha.data = torch.full((len(mask.candidates),), -60.0)
        mask.alpha.data[k] = 60.0
        picks[mask.name] = mask.candidates[k]
    spec = net.spec.replace(
        embed_dim=picks["embed"],
        num_heads=tuple(picks[m.name][0] for m in net.attn_masks),
        head_dim=tuple(picks[m.name][1] for m in net.attn_masks),
        mlp_hidden=tuple(picks[m.name] for m in net.mlp_masks),
    )
    expected = cost.expected(net)
    assert float(expected.detach()) == pytest.approx(table.predict(spec), rel=1e-5)
    # and it is differentiable in every alpha
    for mask in net.masks():
        mask.alpha.data = torch.randn(len(mask.candidates))
    cost.expected(net).backward()
    assert all(m.alpha.grad is not None and m.alpha.grad.abs().sum() > 0 for m in net.masks())


@pytest.mark.slow
def test_tiny_profile_of_a_test_model_on_ort_cpu(tmp_path: Path) -> None:
    from ofb_deploy.profile.measure import profile_model

    spec = get_arch_spec("test_vit")
    table = profile_model(spec, batch=4, threads=1, cache_dir=tmp_path)
    assert table.key["backend"] == "ort-cpu" and table.key["batch"] == 4 and table.key["threads"] == 1
    assert table.embeds[0] == 16 and table.embeds[-1] == 32 and sorted(table.attn_ms) == ["1", "2"]
    assert len(table.fit) == 3 and all(f["measured_ms"] > 0 for f in table.fit)
    assert table.predict(spec) > 0 and math.isfinite(table.scale)
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("test_vit-")
    again = profile_model(spec, batch=4, threads=1, cache_dir=tmp_path)  # the cache answers
    assert again.to_dict() == table.to_dict()


def test_latency_targeted_search_finishes_and_records_its_prediction(tmp_path: Path, fmnist_root: Path) -> None:
    table = synthetic_table()
    path = table.save(tmp_path / "table.json")
    spec = get_arch_spec("test_vit")
    target = 0.6 * table.predict(spec)
    torch.manual_seed(0)
    dense = save_model_dir(create_model("test_vit"), tmp_path / "dense")
    config = SearchConfig(target_flops=None, target_latency=f"{target}ms", latency_table=str(path), epochs=2,
                          batch_size=64, prune_every=3, warmup_epochs=0.3, finalize_at=0.8)  # fmt: skip
    data = DataConfig(root=str(fmnist_root), train_size=512, val_size=128)
    res = run_search(RunDir(tmp_path / "run", create=True), config, dense_checkpoint=dense, data=data)
    lat = res["latency"]
    assert lat["target_ms"] == pytest.approx(target, rel=1e-4) and lat["table_digest"] == table.digest
    assert abs(lat["predicted_ms"] - target) <= 0.03 * target
    assert res["target_flops"] is None and res["flops"] < res["dense_flops"]
    with pytest.raises(Exception, match="outside what the space reaches"):
        too_fast = config.replace(target_latency="0.001ms")
        run_search(RunDir(tmp_path / "run2", create=True), too_fast, dense_checkpoint=dense, data=data)
