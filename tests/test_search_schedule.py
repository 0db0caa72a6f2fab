"""The search schedule without data: progressive rounds, alpha's lr, guarded rounds, target-closest finalisation."""

from __future__ import annotations

import pytest
import torch

from ofb_deploy.models import count_macs, create_model, list_models
from ofb_deploy.models.space import SpaceConfig
from ofb_deploy.search import OfbSupernet, SearchConfig, build_supernet
from ofb_deploy.search.cost import MacsCost
from ofb_deploy.search.finalize import GUARD_GAP, closest_combination, finalize_closest, guard_round
from ofb_deploy.search.loop import SearchState
from ofb_deploy.search.pmim import PixelDecoder
from ofb_deploy.search.result import searched_spec

FMNIST_TRAIN = 60000


def test_alpha_lr_warms_up_to_the_cadence_sized_peak_then_decays() -> None:
    cfg = SearchConfig(epochs=2, prune_every=20, alpha_move=0.4, warmup_epochs=0.5)
    model = create_model("test_vit")
    state = SearchState(OfbSupernet(model), PixelDecoder(32, 4, 1), cfg, 1, 2, steps_per_epoch=100)
    lrs = [state.alpha_lr(s) for s in range(200)]
    assert cfg.peak_alpha_lr == pytest.approx(0.02)
    assert lrs[0] <= 0.02 * cfg.peak_alpha_lr and max(lrs) == pytest.approx(cfg.peak_alpha_lr, rel=1e-6)
    assert lrs.index(max(lrs)) == 49 and lrs[-1] < 0.01 * cfg.peak_alpha_lr
    assert all(a <= b for a, b in zip(lrs[:49], lrs[1:50], strict=True))  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[50:-1], lrs[51:], strict=True))  # cosine falls
    # Adam moves a logit by about its lr per step: at most alpha_move between two rounds
    assert sum(lrs[100:120]) <= cfg.alpha_move + 1e-9


@pytest.mark.parametrize("name", list_models("test_*"))
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_finalisation_lands_within_3pct_of_the_target(name: str, fraction: float) -> None:
    """Whatever alpha says, the joint choice lands on the target (checked by the FLOPs counter on the result)."""
    torch.manual_seed(0)
    net = build_supernet(create_model(name), SpaceConfig())
    for mask in net.masks():
        mask.alpha.data = 3 * torch.randn(len(mask.candidates))
    dense = count_macs(net.spec).total
    finalize_closest(net, MacsCost(net.spec), fraction * dense, lam=0.1)
    macs = count_macs(searched_spec(net)).total
    assert abs(macs - fraction * dense) <= 0.03 * fraction * dense


def test_guard_keeps_a_round_from_losing_the_target() -> None:
    torch.manual_seed(0)
    net = OfbSupernet(create_model("test_vit"))
    dense = count_macs(net.spec).total
    target = 0.3 * dense
    cost = MacsCost(net.spec)
    # every module would keep only its widest candidate: far above a 30% target
    keep = {m.name: [i == len(m.candidates) - 1 for i in range(len(m.candidates))] for m in net.masks()}
    assert closest_combination(net, cost, target, keep)[0] > 1.5 * target
    guarded = guard_round(net, keep, cost, target)
    macs, _ = closest_combination(net, cost, target, guarded)
    assert abs(macs - target) <= GUARD_GAP * target
    for m in net.masks():
        assert guarded[m.name][-1]  # proposed survivors stay
    # a round that keeps a close combination is left alone
    full = {m.name: [True] * len(m.candidates) for m in net.masks()}
    assert guard_round(net, full, cost, target) == full


def test_closest_combination_prefers_probable_candidates_inside_the_band() -> None:
    torch.manual_seed(0)
    net = OfbSupernet(create_model("test_vit_rgb"))
    dense = count_macs(net.spec).total
    target = 0.5 * dense
    cost = MacsCost(net.spec)
    _, picks = closest_combination(net, cost, target)
    assert set(picks) == {m.name for m in net.masks()}
    opened = finalize_closest(net, cost, target, lam=0.1)
    assert len(opened) == len(net.masks()) and net.all_final
    assert abs(float(net.soft_macs()) - target) <= 0.005 * target


def test_a_fixed_width_module_is_finalised_with_its_scale() -> None:
    # embed_min 1.0 leaves the embed one candidate: it must still freeze a non-zero scale, or the slice is all zeros
    torch.manual_seed(0)
    net = build_supernet(create_model("test_vit"), SpaceConfig(embed_min=1.0))
    embed = next(m for m in net.masks() if m.name == "embed")
    assert len(embed.candidates) == 1
    finalize_closest(net, MacsCost(net.spec), 0.6 * count_macs(net.spec).total, lam=0.1)
    assert net.all_final and float(embed.scale.abs().min()) > 0
