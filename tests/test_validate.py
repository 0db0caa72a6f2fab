"""validate_run on a real run (trained test_vit, hand-sliced subnet, ORT CPU fp32/int8 engines, Fashion-MNIST)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.utils.io import read_json
from ofb_deploy.validate.config import ValidateConfig
from ofb_deploy.validate.validate import inputs_hash, list_engines, read_validation, topk, validate_run


def test_topk_counts_hits_within_k() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2], [0.2, 0.3, 0.5]], dtype=np.float32)
    labels = np.array([1, 2, 0])
    got = topk(logits, labels, ks=(1, 2, 5))
    assert got["top1"] == pytest.approx(100 / 3)
    assert got["top2"] == pytest.approx(200 / 3)  # row 1: label 2 is second; row 2: label 0 is last of three
    assert got["top5"] == pytest.approx(100.0)  # k capped at the number of classes


def test_validate_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="batches"):
        ValidateConfig(batches=(0,))
    with pytest.raises(ConfigError, match="unknown key"):
        ValidateConfig.from_dict({"batch": [1]})
    assert ValidateConfig.from_dict({"batches": [2, 4]}).batches == (2, 4)


@pytest.mark.slow
def test_accuracy_of_models_and_engines(validated_run: RunDir) -> None:
    doc = read_json(validated_run.validate_path)
    dense, subnet = doc["models"]["dense"], doc["models"]["subnet"]
    assert dense["top1"] > 50  # trained test_vit: ~75%
    assert subnet["flops"] < 0.6 * dense["flops"]
    assert doc["flops_ratio"] == pytest.approx(dense["flops"] / subnet["flops"])
    kinds = {(e["role"], e["backend"], e["precision"]) for e in doc["engines"]}
    assert kinds == {(r, "ort-cpu", p) for r in ("dense", "subnet") for p in ("fp32", "int8")}
    for e in doc["engines"]:
        ref = doc["models"][e["role"]]
        if e["precision"] == "fp32":  # an exact export agrees with PyTorch on (nearly) every image
            assert e["agreement"]["top1_agreement"] >= 0.99
            assert e["top1"] == pytest.approx(ref["top1"], abs=1.0)
        else:
            assert e["agreement"]["top1_agreement"] >= 0.85
        assert 0 <= e["top1"] <= e["top5"] <= 100


@pytest.mark.slow
def test_latency_per_backend_and_batch(validated_run: RunDir) -> None:
    doc = read_json(validated_run.validate_path)
    assert set(doc["latency"]) == {"torch", "ort-cpu", "ort-cpu.int8"}
    for per_batch in doc["latency"].values():
        assert set(per_batch) == {"1", "4"}
        for batch, entry in per_batch.items():
            d, s = entry["dense"], entry["subnet"]
            assert d["batch_size"] == s["batch_size"] == int(batch)
            assert d["iterations"] >= 3 and s["iterations"] >= 3
            assert entry["pooled_speedup"] == pytest.approx(d["median_ms"] / s["median_ms"])
            assert entry["speedup"] == pytest.approx(float(np.median(entry["round_ratios"])))
            assert entry["speedup_per_flops"] == pytest.approx(entry["speedup"] / doc["flops_ratio"])
            assert d["min_ms"] <= d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"] <= d["max_ms"]
            assert isinstance(d["runner"]["threads"], int) and d["runner"]["threads"] >= 1  # fixed, recorded
    assert doc["machine"]["cpu"] and "onnxruntime" in doc["machine"]["libraries"]
    record = validated_run.stage_record("validate")
    assert record is not None and "speedup" in record and record["dense_top1"] == doc["models"]["dense"]["top1"]


@pytest.mark.slow
def test_results_read_back_typed(validated_run: RunDir) -> None:
    result = read_validation(validated_run)
    assert result.to_dict() == read_json(validated_run.validate_path)  # every key of the file is in the model
    pairs = list(result.timed())
    assert len(pairs) == 6
    for *_, p in pairs:  # the verdict's ratio is the median of the rounds' ratios; the pooled one is the medians'
        assert len(p.round_ratios) == 2 and p.speedup == pytest.approx(float(np.median(p.round_ratios)))
        assert p.pooled_speedup == pytest.approx(p.dense.median_ms / p.subnet.median_ms)
    assert result.models["subnet"].arch.embed_dim == 32 and result.sliced is None  # the hand-sliced fixture
    assert all(e.agreement is not None and e.error is None for e in result.engines)


@pytest.mark.slow
def test_inputs_hash_follows_config_and_engines(validated_run: RunDir) -> None:
    base = ValidateConfig(batches=(1, 4))
    assert inputs_hash(validated_run, base) == inputs_hash(validated_run, ValidateConfig(batches=(1, 4)))
    assert inputs_hash(validated_run, base) != inputs_hash(validated_run, ValidateConfig(batches=(1, 8)))
    names = [e.path.name for e in list_engines(validated_run)]
    assert names == sorted(names, key=lambda n: (n.split(".")[1], n.split(".")[2] != "fp32", n.split(".")[0]))


@pytest.mark.slow
def test_list_engines_ignores_other_files(validated_run: RunDir, tmp_path: Path) -> None:
    copy = RunDir(tmp_path / "run", create=True)
    shutil.copytree(validated_run.engines_dir, copy.engines_dir)
    (copy.engines_dir / "notes.engine").write_text("x")
    (copy.engines_dir / "dense.nobackend.fp32.engine").write_text("x")
    assert len(list_engines(copy)) == 4


def test_validate_needs_models(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="train"):
        validate_run(RunDir(tmp_path, create=True), ValidateConfig(latency=False))
    assert main(["validate", str(tmp_path / "missing")]) == ArtifactError.exit_code
    assert main(["validate", str(tmp_path), "--batch", "1,x"]) == ConfigError.exit_code
