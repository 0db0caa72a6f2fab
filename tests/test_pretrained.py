"""The converged checkpoint shipped in the package: it loads offline, carries its recipe, and is converged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ofb_deploy.errors import ArtifactError, ConfigError, ModelError
from ofb_deploy.models import create_model, save_model_dir
from ofb_deploy.models.pretrained import pretrained_dir, publish, shipped_tags
from ofb_deploy.pipeline.config import load_config

SHIPPED = "vit_fmnist_tiny.fmnist"


def _doc() -> dict:
    folder = pretrained_dir("vit_fmnist_tiny")
    assert folder is not None and folder.name == SHIPPED
    return json.loads((folder / "model.json").read_text())


def test_shipped_checkpoint_is_small_and_records_its_recipe() -> None:
    folder = pretrained_dir(SHIPPED)
    assert folder is not None
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000
    assert not (folder / "train_state.pt").exists()
    doc = _doc()
    assert doc["config"]["epochs"] == len(doc["history"]) and doc["config"]["lr"] == pytest.approx(2e-3)
    assert doc["data"]["name"] == "fmnist" and doc["data"]["train_size"] is None and doc["data"]["val_size"] is None


def test_shipped_checkpoint_has_converged() -> None:
    """The issue's rule: stop where another 5 epochs add less than 0.2 points of top-1."""
    top1 = [h["top1"] for h in _doc()["history"]]
    assert top1[-1] >= 89.0
    assert top1[-1] - top1[-6] < 0.2


def test_pretrained_loads_the_shipped_weights_offline() -> None:
    a = create_model("vit_fmnist_tiny", pretrained=True)
    b = create_model("vit_fmnist_tiny.fmnist", pretrained=True, num_classes=10, in_chans=1)
    fresh = create_model("vit_fmnist_tiny")
    assert shipped_tags("vit_fmnist_tiny") == ["fmnist"]
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), key
    assert not torch.equal(a.head.weight, fresh.head.weight)
    with pytest.raises(ModelError, match="shipped weights"):
        create_model("vit_fmnist_tiny", pretrained=True, num_classes=5)


def test_default_run_starts_from_the_shipped_checkpoint() -> None:
    config = load_config("default")
    assert config.checkpoint == "pretrained" and config.model == "vit_fmnist_tiny"
    with pytest.raises(ConfigError, match="no weights ship for"):
        load_config("default", overrides={"model": "vit_fmnist_small"})


def test_publish_refuses_a_folder_without_a_training_history(tmp_path: Path) -> None:
    save_model_dir(create_model("vit_fmnist_tiny"), tmp_path / "m")
    with pytest.raises(ArtifactError, match="history"):
        publish(tmp_path / "m", "vit_fmnist_tiny.mine")
    with pytest.raises(ArtifactError, match="must be"):
        publish(tmp_path / "m", "vit_fmnist_small.mine")
    assert pretrained_dir("vit_fmnist_tiny.mine") is None
