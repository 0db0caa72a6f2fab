"""report.json / report.md / plots rendered from a real validated run (schema: docs/report_schema.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ofb_deploy.artifacts import REPORT_PLOTS, RunDir
from ofb_deploy.cli import main
from ofb_deploy.errors import ArtifactError
from ofb_deploy.report.report import build_report, check_targets, render_report
from ofb_deploy.utils.io import atomic_write_json, read_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reported(validated_run: RunDir, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """A copy of the validated run with its report rendered (the shared run stays untouched)."""
    root = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(validated_run.root, root)
    run = RunDir(root)
    atomic_write_json(run.config_path, {"targets": {"max_flops_ratio": 0.55, "min_speedup": {"ort-cpu": {"4": 100}}}})
    render_report(run)
    return run


@pytest.mark.slow
def test_report_json_schema(reported: RunDir) -> None:
    doc = read_json(reported.report_json_path)
    validation = read_json(reported.validate_path)
    assert doc["schema_version"] == 1
    for role in ("dense", "subnet"):
        section = doc[role]
        assert isinstance(section["flops"], int) and isinstance(section["params"], int)
        assert section["top1"] == validation["models"][role]["top1"]
        for backend, per_batch in section["latency"].items():
            for batch, row in per_batch.items():
                assert {"p50_ms", "p90_ms", "p99_ms", "throughput"} <= set(row)
                assert row["p50_ms"] == validation["latency"][backend][batch][role]["median_ms"]
    assert doc["subnet"]["flops_ratio"] == pytest.approx(doc["subnet"]["flops"] / doc["dense"]["flops"])
    assert set(doc["speedup"]) == {"torch", "ort-cpu", "ort-cpu.int8"}
    assert doc["speedup"]["ort-cpu"]["4"] == validation["latency"]["ort-cpu"]["4"]["speedup"]
    assert doc["top1_drop"] == pytest.approx(doc["dense"]["top1"] - doc["subnet"]["top1"])
    assert doc["subnet"]["sliced_top1"] is None  # no fine-tuning in this run: the subnet is the sliced model
    assert len(doc["engines"]) == 4 and all(e["top1_agreement"] is not None for e in doc["engines"])
    assert doc["targets"]["flops_ratio"]["passed"] is True
    assert doc["targets"]["speedup ort-cpu batch 4"]["passed"] is False  # 100x is out of reach on purpose
    assert reported.is_done("report")


@pytest.mark.slow
def test_report_markdown_and_plots(reported: RunDir) -> None:
    text = (reported.report_dir / "report.md").read_text()
    doc = read_json(reported.report_json_path)
    assert "| model | MACs (M) | % of dense |" in text
    assert "ort-cpu p50 ms b4" in text
    for i, heads in enumerate(doc["subnet"]["arch"]["num_heads"]):
        assert f"| {i} | {doc['dense']['arch']['num_heads'][i]} -> {heads} |" in text
    assert "| ort-cpu | 4 |" in text and "FAIL" in text
    for name in REPORT_PLOTS:
        data = (reported.report_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert f"![{name}]({name})" in text


@pytest.mark.slow
def test_report_cli_renders_again(reported: RunDir) -> None:
    before = read_json(reported.report_json_path)
    (reported.report_dir / "report.md").unlink()
    assert main(["report", str(reported.root), "--no-plots"]) == 0
    after = read_json(reported.report_json_path)
    assert (reported.report_dir / "report.md").is_file()
    assert {k: v for k, v in after.items() if k != "created_at"} == {
        k: v for k, v in before.items() if k != "created_at"
    }


@pytest.mark.slow
def test_report_without_latency(reported: RunDir, tmp_path: Path) -> None:
    root = tmp_path / "run"
    shutil.copytree(reported.root, root)
    run = RunDir(root)
    validation = read_json(run.validate_path)
    validation["latency"] = {}
    atomic_write_json(run.validate_path, validation)
    doc = render_report(run)
    assert doc["speedup"] == {} and doc["dense"]["latency"] == {}
    assert (run.report_dir / "report.md").is_file()


def test_report_needs_validation(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="ofb-deploy validate"):
        build_report(RunDir(tmp_path, create=True))
    assert main(["report", str(tmp_path)]) == ArtifactError.exit_code
    (tmp_path / "validate").mkdir()
    (tmp_path / "validate" / "validate.json").write_text(json.dumps({"schema_version": 99}))
    assert main(["report", str(tmp_path)]) == ArtifactError.exit_code


def test_check_targets() -> None:
    doc = {"subnet": {"flops_ratio": 0.5}, "top1_drop": 2.5, "speedup": {"ort-cpu": {"32": 1.4}}}
    targets = {"max_flops_ratio": 0.55, "max_top1_drop": 2.0, "min_speedup": {"ort-cpu": {32: 1.3, 8: 1.1}}}
    got = check_targets(doc, targets)
    assert got["flops_ratio"]["passed"] and not got["top1_drop"]["passed"]
    assert got["speedup ort-cpu batch 32"]["passed"]
    assert got["speedup ort-cpu batch 8"] == {"value": None, "limit": 1.1, "passed": False}
