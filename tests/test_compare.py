"""Baselines at equal MACs and ``compare``/``sweep`` on a tiny real run (test_vit on real Fashion-MNIST)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.compare import CompareConfig, compare_run, read_recipe
from ofb_deploy.compare.baselines import MAC_TOLERANCE, torch_pruning_subnet, uniform_counts
from ofb_deploy.data import DataConfig
from ofb_deploy.errors import ConfigError, ModelError
from ofb_deploy.finetune import finetune_run
from ofb_deploy.models import count_macs, create_model, load_model_dir
from ofb_deploy.models.space import SpaceConfig, embed_candidates, mlp_candidates
from ofb_deploy.search import SearchConfig, run_search
from ofb_deploy.slicing import slice_run
from ofb_deploy.train import TrainConfig, train

GRID = SpaceConfig(align=4, embed_min=0.375)  # the Pareto study's grid (benchmarks/pareto.py)


CASES = [
    # deit_tiny at 224 px is slow to build: one case in the fast suite, the rest in `make test`
    pytest.param(name, fraction, keep, marks=pytest.mark.slow)
    if name == "deit_tiny_patch16_224" and (fraction, keep) != (0.5, True)
    else (name, fraction, keep)
    for name in ("vit_fmnist_tiny", "test_vit_rgb", "deit_tiny_patch16_224")
    for fraction in (0.25, 0.5, 0.7)
    for keep in (True, False)
    if (name, fraction, keep) != ("test_vit_rgb", 0.25, True)
]  # fmt: skip  (its stem alone is 12.5%)


@pytest.mark.parametrize(("name", "fraction", "keep_embed"), CASES)
def test_uniform_widths_are_on_the_grid_and_meet_the_macs(name: str, fraction: float, keep_embed: bool) -> None:
    spec = create_model(name).spec
    target = int(fraction * count_macs(spec).total)
    counts = uniform_counts(spec, target, GRID, keep_embed)
    blocks = counts["blocks"]
    assert {(b["heads"], b["head_dim"]) for b in blocks} == {(spec.num_heads[0], blocks[0]["head_dim"])}
    mlps = sorted({b["mlp_hidden"] for b in blocks})
    grid = mlp_candidates(spec.mlp_hidden[0], GRID)
    assert set(mlps) <= set(grid) and (len(mlps) == 1 or grid.index(mlps[1]) == grid.index(mlps[0]) + 1)
    assert counts["embed_dim"] in embed_candidates(spec.embed_dim, GRID) and blocks[0]["head_dim"] % GRID.align == 0
    assert (counts["embed_dim"] == spec.embed_dim) == keep_embed or fraction > 0.9
    sub = spec.replace(
        embed_dim=counts["embed_dim"],
        head_dim=tuple(b["head_dim"] for b in blocks),
        mlp_hidden=tuple(b["mlp_hidden"] for b in blocks),
    )
    assert abs(count_macs(sub).total - target) <= MAC_TOLERANCE / 2 * target


def test_uniform_widths_take_the_grids_head_dims() -> None:
    """At 25% keep-embed uniform widths want 4-channel heads: a grid of 4 has them, an align-8 grid has only 8."""
    spec = create_model("vit_fmnist_tiny").spec
    target = int(0.25 * count_macs(spec).total)
    assert uniform_counts(spec, target, GRID, keep_embed=True)["blocks"][0]["head_dim"] == 4
    assert uniform_counts(spec, target, SpaceConfig(align=8), keep_embed=True)["blocks"][0]["head_dim"] == 8
    with pytest.raises(ConfigError, match="finer grid"):  # MLP widths of a quarter and more cannot pay for it
        uniform_counts(spec, target, SpaceConfig(align=8, mlp_min=0.25, mlp_steps=8), keep_embed=True)


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.3, 0.5])
@pytest.mark.parametrize("taylor", [False, True])
def test_torch_pruning_meets_the_macs_and_runs(fraction: float, taylor: bool) -> None:
    torch.manual_seed(0)
    dense = create_model("vit_fmnist_tiny").eval()
    target = int(fraction * count_macs(dense.spec).total)
    batch = (torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))) if taylor else None
    sub, ratio = torch_pruning_subnet(dense, target, batch)
    assert 0 < ratio < 1 and abs(count_macs(sub.spec).total - target) <= MAC_TOLERANCE * target
    assert sub.spec.embed_dim < dense.spec.embed_dim  # a uniform ratio prunes the embedding too
    x = torch.randn(2, 1, 32, 32)
    assert sub.eval()(x).shape == (2, 10)
    assert dense.patch_embed.proj.out_channels == 64  # the dense model is not modified


def test_torch_pruning_at_a_tiny_ratio_keeps_the_dense_function() -> None:
    """Nothing pruned means the same logits: the q-scale fold and the state-dict conversion are exact."""
    torch.manual_seed(0)
    dense = create_model("test_vit").eval()
    sub, _ = torch_pruning_subnet(dense, count_macs(dense.spec).total)
    x = torch.randn(3, 1, 16, 16)
    assert sub.spec == dense.spec
    torch.testing.assert_close(sub.eval()(x), dense(x), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, fmnist_root: Path) -> RunDir:
    """A run of test_vit through search, slice and finetune on a few hundred real images."""
    run = RunDir(tmp_path_factory.mktemp("tiny_run"), create=True)
    data = DataConfig(root=str(fmnist_root), train_size=384, val_size=128)
    train("test_vit", data, run.dense_dir, TrainConfig(epochs=1, batch_size=32, lr=3e-3))
    run.mark_done("train", "fixture")
    run_search(run, SearchConfig(epochs=1, batch_size=32, align=4, mlp_steps=16), data=data)
    slice_run(run)
    finetune_run(run, TrainConfig(epochs=1, batch_size=32, lr=1e-3), data=data)
    return run


@pytest.mark.slow
def test_compare_holds_every_method_at_equal_macs_and_epochs(tiny_run: RunDir) -> None:
    recipe = read_recipe(tiny_run)
    assert recipe.budget_epochs == 2 and recipe.search_passes == pytest.approx(1.0)
    config = CompareConfig(seeds=(0,), batches=(1, 4), warmup_s=0.01, min_iters=2, min_time_s=0.02, rounds=2)
    doc = compare_run(tiny_run, config)
    assert set(doc["methods"]) == {"ofb", "uniform-keep-embed", "uniform", "torch-pruning", "scratch"}
    paired = doc["checks"]["paired"]
    for method in ("uniform-keep-embed", "uniform", "torch-pruning", "scratch"):
        top1 = doc["methods"][method]["seeds"]["0"]["top1"]
        assert paired[method]["seeds"]["0"] == pytest.approx(doc["methods"]["ofb"]["seeds"]["0"]["top1"] - top1)
        assert doc["checks"]["ofb_at_or_above"][method] == (paired[method]["mean"] >= 0)
    assert doc["checks"]["equal_macs_within_1pct"] and doc["checks"]["equal_epochs"]
    ofb = doc["methods"]["ofb"]["seeds"]["0"]
    assert ofb["reused"] and ofb["model_dir"] == str(tiny_run.finetune_dir)
    for method, m in doc["methods"].items():
        run = m["seeds"]["0"]
        assert run["epochs"] == 2 and abs(run["flops"] - ofb["flops"]) <= MAC_TOLERANCE * ofb["flops"], method
        assert 0 <= run["top1"] <= 100 and set(m["latency_ms"]) == {"1", "4"}
        assert (tiny_run.compare_method_dir(0, method) / "result.json").is_file()
    scratch = load_model_dir(doc["methods"]["scratch"]["seeds"]["0"]["model_dir"])
    assert scratch.spec == load_model_dir(tiny_run.finetune_dir).spec  # the OFB subnet's widths
    assert tiny_run.compare_json.is_file() and tiny_run.compare_plot.stat().st_size > 1000
    # a second call reads every finished method back instead of training again
    before = {m: tiny_run.compare_method_dir(0, m).joinpath("result.json").stat().st_mtime_ns for m in doc["methods"]}
    compare_run(tiny_run, config)
    after = {m: tiny_run.compare_method_dir(0, m).joinpath("result.json").stat().st_mtime_ns for m in doc["methods"]}
    assert before == after


@pytest.mark.slow
def test_compare_rejects_bad_input_before_any_work(tiny_run: RunDir, tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError):
        CompareConfig(methods=("ofb", "prune-everything"))
    with pytest.raises(ConfigError):
        CompareConfig(seeds=(0, 0))
    assert main(["compare", str(tmp_path / "missing")]) != 0
    assert main(["compare", str(tiny_run.root), "--seeds", "a,b"]) != 0
    assert main(["sweep", str(tiny_run.root), "--target-flops", "0.5,7"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 3
    assert not tiny_run.sweep_dir.exists()


@pytest.mark.slow
def test_ofb_latency_searches_at_the_ofb_subnets_measured_latency(
    tiny_run: RunDir, tmp_path: Path, monkeypatch
) -> None:
    """``ofb-latency``: the budget is the OFB subnet's latency timed now as a share of dense; the search meets it on
    the run's table (a made-up one seeded into the cache here: the profile itself is tested in test_latency_table)."""
    from synthetic import synthetic_table

    from ofb_deploy.artifacts import latency_table_path
    from ofb_deploy.profile.measure import default_cache_dir, table_key
    from ofb_deploy.utils.threads import cpu_threads

    monkeypatch.setenv("OFB_CACHE", str(tmp_path))
    recipe = read_recipe(tiny_run)
    spec = load_model_dir(recipe.dense_dir).spec
    key = table_key(spec, recipe.search.space(), "ort-cpu", "fp32", recipe.search.latency_batch, cpu_threads(1))
    table = synthetic_table(key=key)
    table.save(latency_table_path(default_cache_dir(), spec.base_model, table.digest))
    config = CompareConfig(seeds=(0,), methods=("ofb", "ofb-latency"), batches=(1,), threads=1, warmup_s=0.01,
                           min_iters=2, min_time_s=0.02, rounds=2)  # fmt: skip
    doc = compare_run(tiny_run, config)
    run = doc["methods"]["ofb-latency"]["seeds"]["0"]
    budget = run["latency_budget"]
    assert 0 < budget["share"] < 1 and budget["target_latency"] == f"{budget['share']:.4f}x"
    assert budget["threads"] == 1 and budget["table_digest"] == table.digest
    predicted = run["latency_predicted"]
    assert predicted["target_ms"] == pytest.approx(budget["share"] * table.predict(spec), rel=1e-3)
    assert abs(predicted["predicted_ms"] - predicted["target_ms"]) <= 0.05 * predicted["target_ms"]
    assert run["epochs"] == doc["methods"]["ofb"]["seeds"]["0"]["epochs"]
    check = doc["checks"]["equal_latency"]  # batch 8, the table's, is timed although only batch 1 was asked for
    assert check["batch"] == 8 and check["seeds"]["0"]["latency_ratio"] > 0
    assert set(doc["methods"]["ofb-latency"]["latency_ms"]) == {"1", "8"}
    assert doc["checks"]["equal_macs_within_1pct"]  # ofb-latency is held at OFB's latency, not its MACs
    # another seed whose OFB search found the same widths aims at the same budget, timed once (its model folder
    # is not even read); other widths are timed anew
    from ofb_deploy.compare.latency import BUDGET_PASSES, latency_budget

    ofb = doc["methods"]["ofb"]["seeds"]["0"]
    files = list((tiny_run.compare_dir / "latency_budgets").glob("*.json"))
    assert len(files) == 1 and len(budget["pass_shares"]) == BUDGET_PASSES
    assert budget["measured_share"] == pytest.approx(sorted(budget["pass_shares"])[BUDGET_PASSES // 2], abs=1e-4)
    ofb_spec = load_model_dir(ofb["model_dir"]).spec  # the budget is the table's share for the OFB subnet
    assert budget["share"] == pytest.approx(table.predict(ofb_spec) / table.predict(spec), abs=1e-4)
    assert latency_budget(recipe, {**ofb, "seed": 1, "model_dir": str(tmp_path / "gone")}, config) == budget
    narrower = {**ofb["arch"], "embed_dim": ofb["arch"]["embed_dim"] - 8}
    with pytest.raises(ModelError):  # a new measurement: it needs the (missing) model folder
        latency_budget(recipe, {**ofb, "arch": narrower, "seed": 5, "model_dir": str(tmp_path / "gone")}, config)
