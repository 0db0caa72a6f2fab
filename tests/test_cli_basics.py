"""CLI basics: ``info`` and ``train``; bad input exits non-zero with one line and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ofb_deploy.cli import main
from ofb_deploy.timing.latency import collect_info


def test_info_reports_versions_and_devices(capsys) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("torch", "onnxruntime providers", "tensorrt", "cuda devices"):
        assert key in out
    info = collect_info()
    assert info["torch"] == torch.__version__
    assert "CPUExecutionProvider" in info["onnxruntime providers"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_model_lists_known_models(tmp_path: Path, capsys) -> None:
    assert main(["train", str(tmp_path / "o"), "--model", "resnet9000"]) == 2
    line = _error_line(capsys)
    assert "unknown model" in line and "vit_fmnist_tiny" in line


def test_missing_data_root(tmp_path: Path, capsys) -> None:
    args = ["train", str(tmp_path / "o"), "--model", "test_vit", "--data-root", str(tmp_path / "nowhere")]
    assert main(args) == 3
    assert "dataset-fashion-mnist" in _error_line(capsys)


def test_missing_image_folder(tmp_path: Path, capsys) -> None:
    assert main(["train", str(tmp_path / "o"), "--model", "test_vit", "--data", str(tmp_path / "imgs")]) == 3
    assert "not found" in _error_line(capsys)


def test_corrupt_checkpoint(tmp_path: Path, fmnist_root: Path, capsys) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    args = ["train", str(tmp_path / "o"), "--model", "test_vit", "--checkpoint", str(bad)]
    assert main(args) == 2
    assert "cannot read checkpoint" in _error_line(capsys)


def test_unwritable_output_dir(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert main(["train", str(blocker / "out"), "--model", "test_vit"]) == 4
    assert "output directory" in _error_line(capsys)
    assert not (blocker.parent / "out").exists()


@pytest.mark.slow
def test_console_script_bad_input_has_no_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "ofb-deploy"
    proc = subprocess.run(
        [str(exe), "train", str(tmp_path), "--model", "nope"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown model" in proc.stderr
