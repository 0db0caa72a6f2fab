"""report.json / report.md / plots rendered from a real validated run (schema: docs/report_schema.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ofb_deploy.artifacts import REPORT_PLOTS, RunDir
from ofb_deploy.cli import main
from ofb_deploy.compare.results import (
    Budget,
    Checks,
    CompareLatency,
    CompareResult,
    DenseResult,
    MethodResult,
    PairedDifference,
    SweepResult,
    SweepRow,
    Widths,
)
from ofb_deploy.compare.run import summarize
from ofb_deploy.errors import ArtifactError
from ofb_deploy.report.report import build_report, check_targets, read_report, render_report
from ofb_deploy.report.schema import DOC_PATH, FILES, all_models, fields_of, render_schema
from ofb_deploy.report.schema import main as schema_main
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


@pytest.mark.slow
def test_report_reads_back_typed_and_a_broken_validation_fails_with_one_line(reported: RunDir, tmp_path: Path) -> None:
    report = read_report(reported)
    assert report.to_dict() == read_json(reported.report_json_path)  # every key of the file is in the model
    assert report.subnet.arch.depth == len(report.subnet.arch.num_heads) and report.engines[0].error is None
    root = tmp_path / "run"
    shutil.copytree(reported.root, root)
    run = RunDir(root)
    validation = read_json(run.validate_path)
    del validation["models"]["dense"]["flops"]
    atomic_write_json(run.validate_path, validation)
    with pytest.raises(ArtifactError, match=r"models\.dense\.flops: missing") as exc:
        build_report(run)
    assert "\n" not in str(exc.value) and "ofb-deploy validate" in str(exc.value)


@pytest.mark.slow
def test_report_shows_compare_and_sweep_results(reported: RunDir, tmp_path: Path) -> None:
    """The report reads the compare and sweep result files back through their models (made-up numbers here:
    the compare itself runs in test_compare)."""
    root = tmp_path / "run"
    shutil.copytree(reported.root, root)
    run = RunDir(root)
    widths = Widths(embed_dim=32, num_heads=[1, 1], head_dim=[16, 16], mlp_hidden=[32, 32])
    top1 = {("ofb", 0): 80.0, ("ofb", 1): 82.0, ("uniform", 0): 79.0, ("uniform", 1): 83.0}
    made = {(m, s): MethodResult(method=m, seed=s, model_dir=str(root), top1=t, top5=99.0, flops=1000, params=100,
                                 arch=widths, epochs=2) for (m, s), t in top1.items()}  # fmt: skip
    latency = {f"{m}/seed{s}": {"4": 0.5} for m, s in made}
    methods = summarize({m: [r for (k, _), r in made.items() if k == m] for m in ("ofb", "uniform")}, latency)
    paired = PairedDifference(seeds={"0": 1.0, "1": -1.0}, n=2, mean=0.0, se=1.0, wins=1)
    dense = DenseResult(top1=85.0, flops=2000, params=200, latency_ms={"4": 1.0})
    CompareResult(
        run_dir=str(root),
        config={},
        budget=Budget(epochs=2, search_passes=1.0, finetune_epochs=1, finetune={}),
        dense=dense,
        methods=methods,
        checks=Checks(
            equal_macs_within_1pct=True,
            equal_epochs=True,
            ofb_at_or_above={"uniform": True},
            paired={"uniform": paired},
        ),
        latency=CompareLatency(batches=[4]),
    ).write(run.compare_json)
    rows = [SweepRow(**r.model_dump(), target="0.5", latency_ms={"4": 0.5}, flops_ratio=0.5) for r in made.values()]
    SweepResult(run_dir=str(root), targets=["0.5"], methods=["ofb", "uniform"], budget_epochs=2, dense=dense,
                rows=rows[::2], latency=CompareLatency(batches=[4])).write(run.sweep_json)  # fmt: skip
    render_report(run, plots=False)
    report = read_report(run)
    assert report.compare.methods["uniform"].top1 == {"0": 79.0, "1": 83.0}
    assert report.compare.methods["uniform"].top1_mean == 81.0 and report.compare.plot is None
    assert [(r.method, r.top1) for r in report.sweep.rows] == [("ofb", 80.0), ("uniform", 79.0)]
    text = run.report_md_path.read_text()
    assert (
        "| uniform | 81.00 | 79.00 | 83.00 |" in text
        and "| uniform | s0: +1.00, s1: -1.00 | +0.00 | 1.00 | 1/2 |" in text
    )
    assert "| 0.5 | uniform | 50.0 | 79.00 | 0.500 |" in text
    compare = read_json(run.compare_json)
    assert "equal_latency" not in compare["checks"] and "machine" not in compare["latency"]  # absent, not null
    compare["methods"]["uniform"]["seeds"]["0"]["flops"] = "many"
    atomic_write_json(run.compare_json, compare)
    with pytest.raises(ArtifactError, match=r"methods\.uniform\.seeds\.0\.flops = 'many'"):
        build_report(run)


def test_report_needs_validation(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="ofb-deploy validate"):
        build_report(RunDir(tmp_path, create=True))
    assert main(["report", str(tmp_path)]) == ArtifactError.exit_code
    (tmp_path / "validate").mkdir()
    (tmp_path / "validate" / "validate.json").write_text(json.dumps({"schema_version": 99}))
    assert main(["report", str(tmp_path)]) == ArtifactError.exit_code


def test_check_targets() -> None:
    targets = {"max_flops_ratio": 0.55, "max_top1_drop": 2.0, "min_speedup": {"ort-cpu": {32: 1.3, 8: 1.1}}}
    got = check_targets(targets, flops_ratio=0.5, top1_drop=2.5, speedup={"ort-cpu": {"32": 1.4}})
    assert got["flops_ratio"].passed and not got["top1_drop"].passed
    assert got["speedup ort-cpu batch 32"].passed
    assert got["speedup ort-cpu batch 8"].to_dict() == {"value": None, "limit": 1.1, "passed": False}


def test_schema_doc_is_generated_from_the_models(tmp_path: Path) -> None:
    """docs/report_schema.md is the generator's output: a field added or changed in code without running
    ``python -m ofb_deploy.report.schema`` fails here, and every field of every result model is described."""
    assert DOC_PATH.read_text(encoding="utf-8") == render_schema(), "run: python -m ofb_deploy.report.schema"
    for model in all_models([m for _, _, m in FILES]):
        for name, _, description in fields_of(model):
            assert description, f"{model.__name__}.{name} has no description"
            assert f"| `{name}` |" in render_schema()
    stale = tmp_path / "schema.md"
    stale.write_text("# old\n")
    assert schema_main(["--check", "--out", str(stale)]) == 1
    assert schema_main(["--out", str(stale)]) == 0 and schema_main(["--check", "--out", str(stale)]) == 0
