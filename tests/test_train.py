"""Training: schedule, config, a real short run on Fashion-MNIST, resume after a stop, DDP under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ofb_deploy.data import DataConfig, build_loader, build_splits
from ofb_deploy.errors import ArtifactError, ConfigError
from ofb_deploy.models import create_model, load_model_dir
from ofb_deploy.train import TrainConfig, cosine_lr, evaluate, train_model


def test_cosine_lr_warms_up_then_decays() -> None:
    lrs = [cosine_lr(s, 100, 10, 1.0, 0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.01, abs=1e-3)
    assert cosine_lr(100, 100, 0, 1.0, 0.01) == pytest.approx(0.01)


def test_train_config_round_trip_and_validation() -> None:
    cfg = TrainConfig(epochs=2, lr=1e-3, grad_clip=None)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)


@pytest.mark.slow
def test_short_training_beats_chance(trained_test_vit_dir: Path, fmnist_root: Path) -> None:
    doc = json.loads((trained_test_vit_dir / "model.json").read_text())
    assert doc["name"] == "test_vit" and doc["data"]["train_size"] == 4000
    assert doc["config"]["epochs"] == 3 and len(doc["history"]) == 3
    assert doc["metrics"]["top1"] > 60.0  # chance is 10%; about 70% reached
    model = load_model_dir(trained_test_vit_dir)
    splits = build_splits(DataConfig(root=str(fmnist_root), val_size=1000), model.spec)
    again = evaluate(model, build_loader(splits.val, 256, train=False, workers=0))
    assert again["top1"] == pytest.approx(doc["metrics"]["top1"], abs=1e-3)
    assert again["top1"] <= again["top5"] <= 100.0


class _Stop(Exception):
    pass


def _stop_in_epoch(epoch_steps: int, stop_epoch: int):
    calls = {"n": 0}

    def loss_fn(logits, images, labels):
        calls["n"] += 1
        if calls["n"] > epoch_steps * (stop_epoch - 1):
            raise _Stop  # a kill in the middle of `stop_epoch`
        return torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)

    return loss_fn


@pytest.mark.slow
def test_resume_after_stop_matches_uninterrupted_run(tmp_path: Path, fmnist_root: Path) -> None:
    splits = build_splits(
        DataConfig(root=str(fmnist_root), train_size=256, val_size=128), create_model("test_vit").spec
    )
    cfg = TrainConfig(epochs=3, batch_size=32, warmup_epochs=0.5)

    def fresh():
        torch.manual_seed(0)
        return create_model("test_vit")

    torch.manual_seed(5)
    full = train_model(fresh(), splits, tmp_path / "full", cfg)
    with pytest.raises(_Stop):
        torch.manual_seed(5)
        train_model(fresh(), splits, tmp_path / "cut", cfg, loss_fn=_stop_in_epoch(8, stop_epoch=3))
    assert (tmp_path / "cut" / "train_state.pt").is_file()
    assert not (tmp_path / "cut" / "model.json").exists()  # no half-finished artifact
    resumed = train_model(fresh(), splits, tmp_path / "cut", cfg, resume=True)
    assert resumed["top1"] == pytest.approx(full["top1"]) and resumed["loss"] == pytest.approx(full["loss"], abs=1e-4)
    a, b = load_model_dir(tmp_path / "full"), load_model_dir(tmp_path / "cut")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5), name


def test_corrupt_resume_state_is_one_line_error(tmp_path: Path, fmnist_root: Path) -> None:
    splits = build_splits(DataConfig(root=str(fmnist_root), train_size=64, val_size=32), create_model("test_vit").spec)
    (tmp_path / "train_state.pt").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="corrupt resume state"):
        train_model(create_model("test_vit"), splits, tmp_path, TrainConfig(epochs=1), resume=True)


@pytest.mark.slow
def test_torchrun_ddp_two_processes_on_cpu(tmp_path: Path, fmnist_root: Path) -> None:
    bin_dir = Path(sys.executable).parent
    torchrun = shutil.which("torchrun", path=str(bin_dir)) or shutil.which("torchrun")
    assert torchrun, "torchrun not found next to the interpreter"
    run = tmp_path / "ddp"
    cmd = [torchrun, "--nproc_per_node", "2", "--standalone", "--no-python", str(bin_dir / "ofb-deploy"), "train"]
    cmd += [str(run), "--model", "test_vit", "--data-root", str(fmnist_root), "--train-size", "512", "--epochs", "1"]
    cmd += ["--batch-size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((run / "dense" / "model.json").read_text())
    assert doc["metrics"]["world_size"] == 2
    assert doc["metrics"]["top1"] > 10.0
    assert proc.stdout.count("trained test_vit") == 1  # only rank 0 reports
