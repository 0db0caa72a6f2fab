"""Fine-tuning the sliced subnet with distillation: the loss, a short real run on Fashion-MNIST, resume, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.data import run_data
from ofb_deploy.errors import ConfigError, ModelError
from ofb_deploy.finetune import finetune_run
from ofb_deploy.models import create_model, save_model_dir
from ofb_deploy.slicing import load_subnet, slice_handwritten
from ofb_deploy.train import DistillConfig, DistillLoss, TrainConfig, kd_loss
from ofb_deploy.utils.io import read_json

HALF = {"embed_dim": 16, "blocks": [{"heads": 1, "head_dim": 16, "mlp_hidden": 32}] * 2}


def test_kd_loss_terms() -> None:
    torch.manual_seed(0)
    student = torch.randn(8, 10, requires_grad=True)
    teacher, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
    ce = F.cross_entropy(student, labels, label_smoothing=0.1)
    assert torch.allclose(kd_loss(student, teacher, labels, DistillConfig(alpha=0.0)), ce)
    # the soft term vanishes when the student matches the teacher, and is positive otherwise
    assert kd_loss(teacher, teacher, labels, DistillConfig(alpha=1.0)).abs() < 1e-6
    soft = kd_loss(student, teacher, labels, DistillConfig(alpha=1.0, temperature=2.0))
    assert soft > 0
    soft.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    with pytest.raises(ConfigError):
        DistillConfig(alpha=1.5)


def test_distill_loss_runs_frozen_teacher() -> None:
    teacher = create_model("test_vit")
    loss_fn = DistillLoss(teacher, DistillConfig())
    images, labels = torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))
    student = create_model("test_vit")
    loss = loss_fn(student(images), images, labels)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training


@pytest.fixture(scope="module")
def sliced_run(tmp_path_factory: pytest.TempPathFactory, trained_test_vit_dir: Path) -> RunDir:
    """A run whose dense model is the session's trained test_vit, sliced to half width by hand."""
    root = tmp_path_factory.mktemp("ft")
    run = RunDir(root / "run", create=True)
    shutil.copytree(trained_test_vit_dir, run.dense_dir)
    arch = root / "half.json"
    arch.write_text(json.dumps(HALF))
    slice_handwritten(arch, run.dense_dir, run.slice_dir)
    return run


@pytest.mark.slow
def test_finetune_with_distillation_improves_slice(sliced_run: RunDir) -> None:
    run = sliced_run
    recorded = run_data(run)  # taken from the dense model's record
    assert recorded.train_size == read_json(run.dense_dir / "model.json")["data"]["train_size"]
    config = TrainConfig(epochs=2, batch_size=64, lr=1e-3, warmup_epochs=0.1)
    metrics = finetune_run(run, config, data=recorded.replace(train_size=1024, val_size=512))
    assert metrics["top1"] > metrics["sliced_top1"]
    doc = read_json(run.finetune_dir / "subnet.json")
    assert doc["teacher"] == str(run.dense_dir) and doc["distill"]["alpha"] == 0.5
    assert run.is_done("finetune") and run.model_dir("subnet") == run.finetune_dir
    tuned, sliced = load_subnet(run.finetune_dir), load_subnet(run.slice_dir)
    assert tuned.spec == sliced.spec
    assert not torch.equal(tuned.head.weight, sliced.head.weight)
    assert (run.finetune_dir / "slice_record.json").is_file()


@pytest.mark.slow
def test_finetune_resume_continues_from_last_epoch(sliced_run: RunDir, capsys) -> None:
    run = sliced_run
    base = ["finetune", str(run.root), "--batch-size", "64", "--train-size", "256", "--teacher", "none"]
    assert main([*base, "--epochs", "1"]) == 0
    first = read_json(run.finetune_dir / "subnet.json")["history"]
    assert len(first) == 1
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    history = read_json(run.finetune_dir / "subnet.json")["history"]
    keys = ("epoch", "train_loss", "top1")  # the resumed run keeps the first epoch's record
    assert len(history) == 2 and [history[0][k] for k in keys] == [first[0][k] for k in keys]
    assert "fine-tuned" in capsys.readouterr().out


def test_finetune_bad_inputs_are_one_line(tmp_path: Path, capsys) -> None:
    run = RunDir(tmp_path / "run", create=True)
    assert main(["finetune", str(run.root), "--epochs", "1"]) != 0
    assert "ofb-deploy slice" in capsys.readouterr().err
    # a teacher with a different head cannot teach the subnet
    dense = save_model_dir(create_model("test_vit"), tmp_path / "dense")
    arch = tmp_path / "half.json"
    arch.write_text(json.dumps(HALF))
    slice_handwritten(arch, dense, run.slice_dir)
    other = save_model_dir(create_model("test_vit", num_classes=5), tmp_path / "other")
    code = main(["finetune", str(run.root), "--epochs", "1", "--teacher", str(other)])
    err = capsys.readouterr().err.strip()
    assert code == ModelError.exit_code and "num_classes" in err and len(err.splitlines()) == 1
    assert not (run.finetune_dir / "subnet.json").exists()


@pytest.mark.slow
def test_finetune_under_torchrun_prints_its_summary_once(sliced_run: RunDir, tmp_path: Path) -> None:
    """Two ranks fine-tune; only rank 0 prints (it used to ask after the process group was gone: every rank)."""
    script = tmp_path / "cli.py"
    script.write_text("from ofb_deploy.cli import main\nmain()\n")
    args = ["finetune", str(sliced_run.root), "--epochs", "1", "--batch-size", "32", "--train-size", "128",
            "--teacher", "none"]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29537", str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("fine-tuned") == 1, proc.stdout
    assert read_json(sliced_run.finetune_dir / "subnet.json")["metrics"]["world_size"] == 2


def test_precomputed_teacher_logits_match_the_teacher_and_skip_its_passes(fmnist_root: Path) -> None:
    """Without augmentation the teacher runs once over the training set; later batches only look its logits up."""
    from ofb_deploy.data import DataConfig, build_loader, build_splits

    torch.manual_seed(0)
    teacher = create_model("test_vit").eval()
    train = build_splits(DataConfig(root=str(fmnist_root), train_size=300), teacher.spec, train_augment=False).train
    calls: list[int] = []
    teacher.register_forward_hook(lambda _m, inputs, _o: calls.append(len(inputs[0])))
    cached, plain = DistillLoss(teacher, DistillConfig(), train), DistillLoss(teacher, DistillConfig())
    student = create_model("test_vit").eval()
    for epoch in range(2):
        for images, labels in build_loader(train, 64, train=True, workers=0, seed=epoch):
            logits = student(images)
            before = len(calls)
            ours = cached(logits, images, labels)
            if epoch == 1:
                assert len(calls) == before  # no teacher pass after the precomputation
            torch.testing.assert_close(ours, plain(logits, images, labels), atol=1e-5, rtol=1e-5)
    assert calls[:2] == [256, 44]  # the precomputation: fixed chunks over the 300 images
