"""Latency tables: round trip, monotone interpolation, the differentiable expectation, a real tiny profile on ORT
CPU, and a latency-targeted search on a test model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from synthetic import synthetic_table

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.data import DataConfig
from ofb_deploy.errors import ConfigError
from ofb_deploy.models import create_model, get_arch_spec, save_model_dir
from ofb_deploy.models.space import parse_latency
from ofb_deploy.profile.table import LatencyTable
from ofb_deploy.search import OfbSupernet, SearchConfig, run_search
from ofb_deploy.search.cost import LatencyCost


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
    assert [f["model"] for f in table.fit] == ["dense", "uniform50", "uniform75", "random0", "random1", "random2"]
    assert all(f["measured_ms"] > 0 for f in table.fit)
    # NOTE: no bound on the scale's value: it is a ratio of timings and follows the machine's load. What holds
    # under any load: a positive, finite correction, and (least squares with an intercept) residuals summing to 0
    assert table.scale > 0 and math.isfinite(table.scale) and math.isfinite(table.offset)
    residuals = [f["predicted_ms"] - f["measured_ms"] for f in table.fit]
    if table.offset != 0.0:  # the affine fit, not the pure-ratio fallback
        assert abs(sum(residuals)) <= 1e-6 * sum(f["measured_ms"] for f in table.fit)
    assert table.predict(spec) > 0
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("test_vit-")
    again = profile_model(spec, batch=4, threads=1, cache_dir=tmp_path)  # the cache answers
    assert again.to_dict() == table.to_dict()


def test_latency_targets_in_time_units_or_as_a_share_of_dense() -> None:
    assert parse_latency("1.5ms") == (1.5, "ms") and parse_latency("800us") == (pytest.approx(0.8), "ms")
    assert parse_latency("0.002s") == (2.0, "ms") and parse_latency(" 0.6X ") == (0.6, "x")
    for bad in ("1.5", "1.2x", "0x", "-1ms", "fast"):
        with pytest.raises(ConfigError):
            parse_latency(bad)
    assert SearchConfig(target_flops=None, target_latency="0.6x").target_latency == "0.6x"
    with pytest.raises(ConfigError, match="share in"):
        SearchConfig(target_flops=None, target_latency="1.5x")


@pytest.mark.slow
def test_latency_targeted_search_finishes_and_records_its_prediction(tmp_path: Path, fmnist_root: Path) -> None:
    table = synthetic_table()
    path = table.save(tmp_path / "table.json")
    spec = get_arch_spec("test_vit")
    target = 0.6 * table.predict(spec)  # "0.6x": a share of the dense latency the table predicts
    torch.manual_seed(0)
    dense = save_model_dir(create_model("test_vit"), tmp_path / "dense")
    config = SearchConfig(target_flops=None, target_latency="0.6x", latency_table=str(path), epochs=2,
                          batch_size=64, prune_every=3, warmup_epochs=0.3, finalize_at=0.8)  # fmt: skip
    data = DataConfig(root=str(fmnist_root), train_size=512, val_size=128)
    res = run_search(RunDir(tmp_path / "run", create=True), config, dense_checkpoint=dense, data=data)
    lat = res["latency"]
    assert lat["target"] == "0.6x" and lat["table_digest"] == table.digest
    assert lat["target_ms"] == pytest.approx(target, rel=1e-4)
    assert abs(lat["predicted_ms"] - target) <= 0.03 * target
    assert res["target_flops"] is None and res["flops"] < res["dense_flops"]
    with pytest.raises(Exception, match="outside what the space reaches"):
        too_fast = config.replace(target_latency="0.001ms")
        run_search(RunDir(tmp_path / "run2", create=True), too_fast, dense_checkpoint=dense, data=data)


def test_validate_checks_the_prediction_in_ms_and_as_a_share_of_dense(tmp_path: Path) -> None:
    from ofb_deploy.timing.latency import LatencyReport
    from ofb_deploy.utils.io import atomic_write_json
    from ofb_deploy.validate.results import LatencyStats, PairLatency
    from ofb_deploy.validate.validate import latency_prediction

    run = RunDir(tmp_path / "run", create=True)
    assert latency_prediction(run, {}) is None  # no search yet
    predicted = {"target": "0.6x", "target_ms": 6.0, "predicted_ms": 6.1, "dense_predicted_ms": 10.0, "threads": 1,
                 "table_digest": "abc", "backend": "ort-cpu", "batch": 8, "precision": "fp32"}  # fmt: skip
    run.stage_dir("search", create=True)
    atomic_write_json(run.arch_path, {"latency": predicted})

    def timed(dense: float, subnet: float, threads: int) -> dict:
        def stats(ms: float) -> LatencyStats:  # three iterations of ``ms`` each: the median is ``ms``
            runner = {"threads": threads}
            return LatencyStats.of(LatencyReport.from_samples([ms / 1e3] * 3, backend="ort-cpu", batch_size=8,
                                                              runner=runner))  # fmt: skip

        ratio = dense / subnet
        pair = PairLatency(dense=stats(dense), subnet=stats(subnet), speedup=ratio, pooled_speedup=ratio)
        return {"ort-cpu": {"8": pair}}

    out = latency_prediction(run, timed(12.0, 7.2, 1))  # the machine runs 1.2x slower than when profiled
    assert out.measured_ms == pytest.approx(7.2) and out.error_pct == pytest.approx(100 * (6.1 - 7.2) / 7.2, abs=0.01)
    assert out.drift == pytest.approx(1.2) and out.measured_share == pytest.approx(0.6)
    assert out.predicted_share == pytest.approx(0.61) and out.share_error_pct == pytest.approx(1.67, abs=0.01)
    assert "note" not in out.to_dict() and out.to_dict()["target"] == "0.6x"  # the search's fields carried over
    other = latency_prediction(run, timed(12.0, 7.2, 2))  # timed at another thread count: no comparison
    assert other.measured_ms is None and other.error_pct is None and "2 thread(s)" in other.note
    assert "drift" not in other.to_dict() and other.to_dict()["measured_ms"] is None  # null, not left out
    assert latency_prediction(run, {}).measured_ms is None  # that backend was not timed
