"""End-to-end OFB searches on ``test_vit`` with real Fashion-MNIST: FLOPs target, output, resume, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ofb_deploy.artifacts import RunDir
from ofb_deploy.data import DataConfig, build_loader, build_splits
from ofb_deploy.models import count_macs, create_model, save_model_dir
from ofb_deploy.search import SearchConfig, load_searched_model, run_search
from ofb_deploy.train import evaluate

pytestmark = pytest.mark.slow

DATA = DataConfig(train_size=1536, val_size=256)
FAST = {"epochs": 3, "batch_size": 64, "prune_every": 4, "warmup_epochs": 0.5, "train_size": None, "seed": 0}
VOLATILE = ("search_seconds", "config")  # keys allowed to differ between equivalent runs


def _dense(root: Path) -> Path:
    torch.manual_seed(0)
    return save_model_dir(create_model("test_vit"), root / "dense_src")


def _search(root: Path, dense: Path, **overrides: object) -> dict:
    config = SearchConfig(**{**FAST, **overrides})
    return run_search(RunDir(root, create=True), config, dense_checkpoint=dense, data=DATA, resume=True)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("search")
    dense = _dense(root)
    return root, dense, _search(root / "run", dense)


def test_search_lands_within_3pct_of_target_and_logs_its_rounds(searched: tuple[Path, Path, dict]) -> None:
    root, _, summary = searched
    assert abs(summary["flops"] - summary["target_flops"]) <= 0.03 * summary["target_flops"]
    run = RunDir(root / "run")
    doc = json.loads(run.arch_path.read_text())
    blocks = doc["blocks"]
    spec = create_model("test_vit").spec.replace(
        embed_dim=doc["embed_dim"],
        num_heads=tuple(b["heads"] for b in blocks),
        head_dim=tuple(b["head_dim"] for b in blocks),
        mlp_hidden=tuple(b["mlp_hidden"] for b in blocks),
    )
    assert doc["flops"] == count_macs(spec).total  # the widths the file lists cost what it says
    assert 0.97 <= doc["flops_over_target"] <= 1.03
    assert doc["converged"] == (doc["unconverged"] == [])
    assert doc["prune_log"], "no pruning round removed anything"
    for record in doc["prune_log"]:
        assert record.get("joint") or (record["step"] % FAST["prune_every"] == 0 and record["changes"])
        for change in record["changes"]:
            assert set(change["after"]) < set(change["before"])
            assert change["final"] == (len(change["after"]) == 1) == (change["module"] in record["became_final"])
    assert run.is_done("search")
    assert len(doc["blocks"]) == 2 and len(doc["embed_idx"]) == doc["embed_dim"]
    for block in doc["blocks"]:
        assert len(block["head_idx"]) == block["heads"] and len(block["mlp_idx"]) == block["mlp_hidden"]
        assert all(len(ch) == block["head_dim"] for ch in block["channel_idx"])
    weights = load_file(str(run.searched_weights_path))
    assert int((weights["scale.embed"] != 0).sum()) == doc["embed_dim"]
    assert weights["scale.blocks.0.attn"].shape == (2, 16)


def test_load_searched_model_reproduces_reported_top1(searched: tuple[Path, Path, dict]) -> None:
    root, _, summary = searched
    model = load_searched_model(RunDir(root / "run"))
    loader = build_loader(build_splits(DATA, model.spec).val, 256, train=False, workers=0)
    assert evaluate(model, loader)["top1"] == pytest.approx(summary["top1"], abs=1e-3)


def test_resume_after_kill_gives_the_same_architecture(searched: tuple[Path, Path, dict]) -> None:
    root, dense, summary = searched
    stopped = _search(root / "resumed", dense, stop_after_epochs=1)
    assert stopped["stopped_after_epoch"] == 1 and RunDir(root / "resumed").state_file("search").is_file()
    resumed = _search(root / "resumed", dense)
    full = json.loads(RunDir(root / "run").arch_path.read_text())
    again = json.loads(RunDir(root / "resumed").arch_path.read_text())
    for key in VOLATILE:
        full.pop(key), again.pop(key)
    assert again == full
    assert resumed["weights_sha256"] == summary["weights_sha256"]


def test_torchrun_two_processes_keep_identical_search_state(tmp_path: Path) -> None:
    dense = _dense(tmp_path)
    script = tmp_path / "ddp_search.py"
    script.write_text(
        "import json, os, sys\n"
        "from ofb_deploy.data import DataConfig\n"
        "from ofb_deploy.artifacts import RunDir\n"
        "from ofb_deploy.search import SearchConfig, run_search\n"
        "from ofb_deploy.utils import dist\n"
        f"cfg = SearchConfig(**{FAST!r})\n"
        "res = run_search(RunDir(sys.argv[1], create=True), cfg, dense_checkpoint=sys.argv[2],\n"
        "                 data=DataConfig(train_size=1536, val_size=256))\n"
        "open(os.path.join(sys.argv[1], f\"rank{os.environ['RANK']}.json\"), 'w').write(json.dumps(res))\n"
        "dist.cleanup()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           str(script), str(tmp_path / "run"), str(dense)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0, r1 = (json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["weights_sha256"] == r1["weights_sha256"]
    assert r0["flops"] == r1["flops"] and RunDir(tmp_path / "run").arch_path.is_file()
