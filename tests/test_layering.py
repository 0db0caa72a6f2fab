"""Package structure: artifact names have one home, layers point one way, library code never imports the CLI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import ofb_deploy

PACKAGE = Path(ofb_deploy.__file__).parent
REPO = PACKAGE.parent
ARTIFACTS = PACKAGE / "artifacts.py"

# every file name a run directory or model folder holds (artifacts.py's docstring lists them)
ARTIFACT_NAMES = (
    "run.json", "state.json", "pipeline.json", "model.json", "model.safetensors", "subnet.json",
    "subnet.safetensors", "arch.json", "searched.safetensors", "search_state.pt", "train_state.pt",
    "slice_record.json", "export.json", "validate.json", "report.json", "report.md", "widths.png",
    "latency_vs_batch.png", "accuracy_vs_latency.png", "compare.json", "compare.png", "sweep.json", "sweep.png",
    "result.json", "widths.json", "subnet.onnx", "model.onnx", "dense.onnx", "timing.cache", "augmented.onnx",
    "ranges.json", ".runtime.cache", ".trtcache",
)  # fmt: skip
NAMED = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in ARTIFACT_NAMES) + r")(?!\w)")
# a name assembled in code: an f-string ending in an artifact suffix, e.g. f"{stem}.json"
ASSEMBLED = re.compile(r"\}\.(json|safetensors|onnx|engine|pt|png|md|cache|trtcache)\b")


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py")) + sorted((REPO / "benchmarks").glob("*.py"))
    return [p for p in files if p != ARTIFACTS]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_artifact_name_outside_the_artifacts_module(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    named = NAMED.findall(text)
    assert not named, f"{path.name} names {named}: build the path with ofb_deploy.artifacts"
    assert not ASSEMBLED.search(text), f"{path.name} assembles an artifact name: {ASSEMBLED.search(text).group(0)}"


def test_artifacts_module_imports_no_stage() -> None:
    stages = {m for m in _imports(ARTIFACTS) if m.startswith("ofb_deploy.")}
    assert stages <= {"ofb_deploy.errors", "ofb_deploy.choices", "ofb_deploy.markers", "ofb_deploy.utils.io"}, stages


def test_import_contracts_hold() -> None:
    """The import-linter contracts of pyproject.toml (layers point down, no cycles between packages) hold."""
    import subprocess
    import sys

    linter = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(linter)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.count("KEPT") == 2


SUBPACKAGES = ("build", "calibrate", "compare", "data", "engines", "export", "finetune", "models", "onnxtools",
               "profile", "report", "search", "slicing", "timing", "train", "validate")  # fmt: skip


def test_every_lazy_export_resolves() -> None:
    import importlib

    for name in ofb_deploy.__all__:
        assert getattr(ofb_deploy, name) is not None, name
    for package in SUBPACKAGES:
        module = importlib.import_module(f"ofb_deploy.{package}")
        for name in module.__all__:
            assert getattr(module, name) is not None, f"ofb_deploy.{package}.{name}"


def test_the_cli_and_every_config_load_without_torch() -> None:
    """A bad config or flag fails in about a second: nothing on that path imports torch (or ONNX)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import ofb_deploy.cli\n"
        "from ofb_deploy.pipeline.config import load_config\n"
        "load_config('quick', sets=['search.epochs=2'], check=False)\n"
        "from ofb_deploy.data import DataConfig, dataset_info\n"
        "dataset_info(DataConfig())\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'timm', 'torchvision') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
