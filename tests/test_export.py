"""ONNX export: one file, dynamic batch, LayerNorm as one op, parity with PyTorch on real Fashion-MNIST images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from ofb_deploy import create_model, list_models, save_model_dir
from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.errors import ArtifactError, ConfigError, ParityError
from ofb_deploy.export import run as export_run_mod
from ofb_deploy.export.run import ParityChecker, export_model_dir, export_run
from ofb_deploy.onnxtools.export import check_onnx, convert_fp16, export_onnx


def _export_and_check(name: str, tmp_path: Path, fmnist_root: Path) -> None:
    model = create_model(name).eval()
    path = tmp_path / f"{name}.onnx"
    info = export_onnx(model, path)
    # one file, no external data, opset 17, LayerNorm as one op per norm (ViT: 2 per block + final)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert info["opset"] == 17
    assert info["layernorm_ops"] == sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    assert "ReduceMean" not in info["ops"]
    spec = model.spec
    assert info["inputs"] == {
        "input": {"shape": ["batch", spec.in_chans, spec.img_size, spec.img_size], "dtype": "float32"}
    }
    assert info["outputs"] == {"logits": {"shape": ["batch", spec.num_classes], "dtype": "float32"}}
    parity = ParityChecker(model, {"name": "fmnist", "root": str(fmnist_root), "val_size": 16}, images=16)
    assert parity.reader.images.shape[1:] == (spec.in_chans, spec.img_size, spec.img_size)
    report = parity.check(path, "fp32", name)
    assert report["passed"] and report["max_abs"] < 1e-4 and report["top1_agreement"] == 1.0


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if "swin" in n else n for n in list_models("test_*")]
)
def test_export_presets_parity(name: str, tmp_path: Path, fmnist_root: Path) -> None:
    _export_and_check(name, tmp_path, fmnist_root)


@pytest.mark.slow
def test_export_deit_tiny_224_parity(tmp_path: Path, fmnist_root: Path) -> None:
    _export_and_check("deit_tiny_patch16_224", tmp_path, fmnist_root)


def test_dynamic_batch_runs_any_size(tmp_path: Path) -> None:
    from ofb_deploy.engines import make_runner

    model = create_model("test_vit").eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, batch=3)
    with make_runner("ort-cpu", path) as ort_runner, make_runner("torch", model) as ref:
        for batch in (1, 2, 7):
            feed = {"input": np.random.default_rng(batch).normal(size=(batch, 1, 16, 16)).astype(np.float32)}
            out = ort_runner.infer(feed)["logits"]
            assert out.shape == (batch, 10)
            np.testing.assert_allclose(out, ref.infer(feed)["logits"], atol=1e-5)


def test_fp16_keeps_layernorm_softmax_and_io_float32(tmp_path: Path) -> None:
    model = create_model("test_vit_rgb").eval()
    export_onnx(model, tmp_path / "m.onnx")
    info = convert_fp16(tmp_path / "m.onnx", tmp_path / "m.fp16.onnx")
    assert info["inputs"]["input"]["dtype"] == "float32" and info["outputs"]["logits"]["dtype"] == "float32"
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "m.fp16.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in [*proto.graph.value_info, *proto.graph.input]}
    types |= {t.name: t.data_type for t in proto.graph.initializer}
    kept = [n for n in proto.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert len(kept) == 7 + 3
    for node in kept:
        assert types[node.input[0]] == onnx.TensorProto.FLOAT, node.name
    matmul_weights = [types[n.input[1]] for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in types]
    assert onnx.TensorProto.FLOAT16 in matmul_weights  # the heavy ops did become float16


def test_bad_opset_and_bad_file(tmp_path: Path) -> None:
    model = create_model("test_vit")
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=16)
    assert not list(tmp_path.iterdir())
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="invalid ONNX"):
        check_onnx(tmp_path / "junk.onnx")


def test_parity_failure_leaves_no_artifact(tmp_path: Path, fmnist_root: Path, monkeypatch) -> None:
    model_dir = save_model_dir(create_model("test_vit"), tmp_path / "m")
    (model_dir / "model.json").write_text(
        json.dumps({**json.loads((model_dir / "model.json").read_text()), "data": {"root": str(fmnist_root)}})
    )
    # a tolerance no real export can meet: the fp32 file must be judged and then removed
    monkeypatch.setitem(export_run_mod.TOLERANCES, "fp32", {"max_abs": 0.0})
    with pytest.raises(ParityError, match="max_abs"):
        export_model_dir(model_dir, tmp_path / "out", parity_images=8)
    assert not list((tmp_path / "out").glob("*.onnx")) and not list((tmp_path / "out").glob(".*tmp"))


@pytest.mark.slow
def test_export_run_and_cli(tmp_path: Path, trained_test_vit_dir: Path, capsys) -> None:
    import shutil

    run = RunDir(tmp_path / "run", create=True)
    shutil.copytree(trained_test_vit_dir, run.dense_dir)
    doc = export_run(run, fp16=True, parity_images=64)
    assert run.onnx_path("dense").is_file() and run.onnx_path("dense", "fp16").is_file()
    assert not run.onnx_path("subnet").exists()  # no slice/ yet: only the dense role
    record = json.loads((run.export_dir / "export.json").read_text())
    for precision in ("fp32", "fp16"):
        parity = record["dense"][precision]["parity"]
        assert {"max_abs", "mean_abs", "p99_abs", "cosine", "top1_agreement"} <= set(parity)
        assert parity["samples"] == 64 and parity["passed"]
    assert doc["dense"]["fp32"]["parity"]["top1_agreement"] == 1.0
    assert run.is_done("export")
    # the CLI on a model folder writes next to --out and prints the parity table
    assert main(["export", str(trained_test_vit_dir), "--out", str(tmp_path / "cli"), "--parity-images", "32"]) == 0
    assert (tmp_path / "cli" / "model.onnx").is_file() and (tmp_path / "cli" / "export.json").is_file()
    assert "fp32" in capsys.readouterr().out
    assert main(["export", str(trained_test_vit_dir), "--opset", "16", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad" / "model.onnx").exists()
