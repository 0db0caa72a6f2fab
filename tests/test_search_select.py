"""The joint choice by measured loss (``search/select.py``) and planted redundancy, on real models and data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ofb_deploy.artifacts import RunDir
from ofb_deploy.data import DataConfig, build_splits
from ofb_deploy.models import count_macs, create_model, load_model_dir, save_model_dir
from ofb_deploy.models.space import SpaceConfig
from ofb_deploy.search import SearchConfig, build_supernet, run_search
from ofb_deploy.search.cost import MacsCost
from ofb_deploy.search.finalize import TOLERANCE, combination_cost
from ofb_deploy.search.planted import plant_dead_modules, planted_verdict
from ofb_deploy.search.run import init_scores_from_weights
from ofb_deploy.search.select import HeldOut, held_out, neighbours, trial
from ofb_deploy.slicing import slice_handwritten
from ofb_deploy.slicing.run import load_subnet
from ofb_deploy.train.config import DistillConfig


def _net(name: str = "test_vit", space: SpaceConfig | None = None):
    torch.manual_seed(0)
    net = build_supernet(create_model(name).eval(), space or SpaceConfig(align=4, mlp_steps=16))
    init_scores_from_weights(net)
    net.refresh()
    return net


def _picks(net, seed: int = 0) -> dict[str, int]:
    g = torch.Generator().manual_seed(seed)
    return {m.name: int(torch.randint(len(m.candidates), (1,), generator=g)) for m in net.masks()}


def _spec(net, picks: dict[str, int]):
    """The spec of ``picks`` read off the candidate lists (not through a trial)."""
    attn = [m.candidates[picks[m.name]] for m in net.attn_masks]
    return net.spec.replace(
        embed_dim=net.embed_mask.candidates[picks[net.embed_mask.name]],
        num_heads=tuple(h for h, _ in attn),
        head_dim=tuple(d for _, d in attn),
        mlp_hidden=tuple(m.candidates[picks[m.name]] for m in net.mlp_masks),
    )


def test_combination_cost_is_the_flops_counters_count_of_the_widths() -> None:
    net = _net("test_vit_rgb")
    for seed in range(5):
        picks = _picks(net, seed)
        assert combination_cost(net, MacsCost(net.spec), picks) == count_macs(_spec(net, picks)).total


def test_trial_restores_every_mask_and_the_forward() -> None:
    net = _net()
    x = torch.randn(4, 1, 16, 16)
    before = net(x)
    state = [(m.alive.clone(), m.scale.clone(), list(m.candidates), m.alpha) for m in net.masks()]
    with trial(net, _picks(net, 1), 0.3):
        assert all(m.final for m in net.masks())
        assert not torch.allclose(net(x), before)
    for mask, (alive, scale, candidates, alpha) in zip(net.masks(), state, strict=True):
        assert torch.equal(mask.alive, alive) and torch.equal(mask.scale, scale)
        assert mask.candidates == candidates and mask.alpha is alpha and not mask.final
    torch.testing.assert_close(net(x), before, rtol=0, atol=0)


def test_a_trial_at_lambda_0_is_the_magnitude_slice_of_the_dense_model(tmp_path: Path) -> None:
    """Second method: the hand-written slicing path (``slice --arch``) cuts the same widths by weight magnitude."""
    torch.manual_seed(0)
    dense = create_model("test_vit").eval()
    source = save_model_dir(dense, tmp_path / "dense")
    net = build_supernet(load_model_dir(source).eval(), SpaceConfig(align=4, mlp_steps=16))
    init_scores_from_weights(net)
    net.refresh()
    picks = _picks(net, 2)
    spec = _spec(net, picks)
    widths = {"embed_dim": spec.embed_dim, "blocks": [
        {"heads": h, "head_dim": d, "mlp_hidden": m}
        for h, d, m in zip(spec.num_heads, spec.head_dim, spec.mlp_hidden, strict=True)]}  # fmt: skip
    (tmp_path / "w.json").write_text(json.dumps(widths))
    slice_handwritten(tmp_path / "w.json", source, tmp_path / "sliced")
    x = torch.randn(5, 1, 16, 16)
    with trial(net, picks, 0.0):
        ours = net(x)
    torch.testing.assert_close(ours, load_subnet(tmp_path / "sliced").eval()(x), atol=1e-5, rtol=1e-5)


def test_neighbours_move_two_modules_and_stay_in_the_band() -> None:
    net = _net()
    cost = MacsCost(net.spec)
    picks = _picks(net, 3)
    target = combination_cost(net, cost, picks)
    moves = neighbours(net, cost, target, picks)
    assert moves
    for moved in moves:
        changed = [name for name in picks if moved[name] != picks[name]]
        assert len(changed) == 2
        assert abs(combination_cost(net, cost, moved) - target) <= TOLERANCE * target


def test_planted_modules_stay_dead_under_training() -> None:
    """Every weight of a zeroed module gets a zero gradient; only the output layer's bias learns, a constant that
    does not depend on the input nor on the module's width."""
    torch.manual_seed(0)
    model = plant_dead_modules(create_model("test_vit"), attn=[1], mlp=[0])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(8, 1, 16, 16)), torch.randint(0, 10, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    attn, mlp = model.blocks[1].attn, model.blocks[0].mlp
    for tensor in (attn.qkv.weight, attn.qkv.bias, attn.proj.weight, mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight):
        assert not tensor.any()
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(attn(x), attn.proj.bias.expand_as(x))
    torch.testing.assert_close(mlp(x), mlp.fc2.bias.expand_as(x))


def test_held_out_loss_is_the_distillation_loss_of_the_dense_logits(fmnist_root: Path) -> None:
    data = DataConfig(root=str(fmnist_root), train_size=64, val_size=16)
    torch.manual_seed(0)
    dense = create_model("test_vit").eval()
    held = held_out(build_splits(data, dense.spec, train_augment=False).train, dense, DistillConfig(), batch=24)
    assert isinstance(held, HeldOut) and held.images.shape == (64, 1, 16, 16)
    # the dense model against its own logits: only the label term of the distillation loss is left
    ce = torch.nn.functional.cross_entropy(held.dense_logits, held.labels, label_smoothing=0.1)
    assert held.loss(dense) == pytest.approx(0.5 * float(ce), rel=1e-5)


@pytest.mark.slow
def test_a_search_gives_planted_dead_modules_the_narrowest_widths(
    trained_test_vit_dir: Path, tmp_path: Path, fmnist_root: Path
) -> None:
    """Block 0's MLP and block 1's attention are zeroed: each must end narrower than the live one of its kind."""
    dense = plant_dead_modules(load_model_dir(trained_test_vit_dir), attn=[1], mlp=[0])
    source = save_model_dir(dense, tmp_path / "planted")
    data = DataConfig(root=str(fmnist_root), train_size=1024, val_size=256)
    config = SearchConfig(epochs=1, batch_size=64, select_images=256, target_flops="0.5", align=4, mlp_steps=16,
                          finalize_at=0.0)  # fmt: skip
    run = RunDir(tmp_path / "run", create=True)
    run_search(run, config, dense_checkpoint=source, data=data)
    doc = json.loads(run.arch_path.read_text())
    verdict = planted_verdict(doc["blocks"], attn=[1], mlp=[0])
    assert verdict["passed"], verdict
    assert doc["selection"] and doc["selection"][0]["loss"] == min(r["loss"] for r in doc["selection"])
