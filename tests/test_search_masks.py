"""Bi-mask, staircase, losses, pruning and the masked supernet forward on the tiny test models."""

from __future__ import annotations

import pytest
import torch

from ofb_deploy.errors import ConfigError
from ofb_deploy.models import count_macs, create_model, list_models
from ofb_deploy.models.space import SpaceConfig, attn_candidates, embed_candidates, mlp_candidates, parse_flops_target
from ofb_deploy.search import OfbSupernet, build_supernet
from ofb_deploy.search.losses import budget_loss, onehot_loss
from ofb_deploy.search.masks import ChannelMask, HeadMask, staircase, staircase2d
from ofb_deploy.search.pmim import PixelDecoder, local_normalize, mim_loss, random_token_mask


def _random_alpha(mask, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    mask.alpha.data = torch.randn(len(mask.candidates), generator=g) * 2


def test_candidate_grids_are_aligned_and_include_dense() -> None:
    space = SpaceConfig()
    assert embed_candidates(192, space) == list(range(96, 193, 8))
    assert mlp_candidates(768, space) == list(range(24, 769, 24))  # 1/32 steps from 1/32: a low floor
    assert mlp_candidates(768, SpaceConfig(mlp_min=0.25, mlp_steps=8)) == [192, 288, 384, 480, 576, 672, 768]
    grid = attn_candidates(3, 64, space)  # DeiT-T: 3 heads
    assert len(grid) == 3 * 8 and grid[-1] == (3, 64) and all(d % 8 == 0 for _, d in grid)


def test_staircase_is_non_increasing_and_sums_to_expected_width() -> None:
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(5), 0)
    sizes = torch.tensor([3.0, 5, 8, 10, 12])
    v = staircase(p, sizes, 12)
    assert torch.all(v[1:] <= v[:-1] + 1e-7)
    assert v[0] == pytest.approx(1.0) and v.sum() == pytest.approx(float((p * sizes).sum()), rel=1e-6)
    heads, dims = torch.tensor([1, 2, 2, 3]), torch.tensor([8, 8, 16, 16])
    p4 = torch.softmax(torch.randn(4), 0)
    v2 = staircase2d(p4, heads, dims, 3, 16)
    assert torch.all(v2[1:] <= v2[:-1] + 1e-7) and torch.all(v2[:, 1:] <= v2[:, :-1] + 1e-7)
    assert v2.sum() == pytest.approx(float((p4 * heads * dims).sum()), rel=1e-6)


@pytest.mark.parametrize("kind", ["channel", "head"])
def test_mask_sum_at_lambda_zero_is_expected_width(kind: str) -> None:
    torch.manual_seed(0)
    if kind == "channel":
        mask = ChannelMask("blocks.0.mlp", 64, mlp_candidates(64, SpaceConfig()), "mlp")
    else:
        mask = HeadMask("blocks.0.attn", 4, 16, attn_candidates(4, 16, SpaceConfig()))
    _random_alpha(mask)
    with torch.no_grad():
        values = mask.mask(0.0)
        assert float(values.sum()) == pytest.approx(float(mask.expected_width()), rel=1e-5)
        # the most important unit (highest score) gets the highest V
        flat_scores = mask.importance().flatten()
        assert float(values.flatten()[flat_scores.argmax()]) == pytest.approx(float(values.max()))


def test_onehot_loss_is_lowest_at_one_hot() -> None:
    torch.manual_seed(0)
    k = 6
    one_hot = torch.full((k,), 1e-9)
    one_hot[2] = 1.0
    best = float(onehot_loss(one_hot / one_hot.sum()))
    for _ in range(50):
        p = torch.softmax(torch.randn(k) * 3, 0)
        assert float(onehot_loss(p)) > best
    uniform = torch.full((k,), 1.0 / k)
    path = [float(onehot_loss((1 - a) * uniform + a * one_hot)) for a in (0.1, 0.4, 0.7, 0.95)]
    assert path == sorted(path, reverse=True)  # sharpening always lowers it
    assert float(onehot_loss(torch.ones(1))) == 0.0


def test_budget_loss_reaches_every_alpha() -> None:
    torch.manual_seed(0)
    net = OfbSupernet(create_model("test_vit"))
    for i, mask in enumerate(net.masks()):
        _random_alpha(mask, i)
    dense = count_macs(net.spec).total
    assert float(net.soft_macs().detach()) > 0.1 * dense
    budget_loss(net.soft_macs(), 0.1 * dense, dense).backward()
    for mask in net.masks():
        assert mask.alpha.grad is not None and mask.alpha.grad.abs().sum() > 0, mask.name
        # soft MACs above the target: the gradient favours smaller candidates
        assert float(mask.alpha.grad[0]) < float(mask.alpha.grad[-1]), mask.name


@pytest.mark.parametrize("name", list_models("test_*"))
def test_supernet_matches_dense_with_unit_final_masks(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    net = build_supernet(model).eval()
    for mask in net.masks():
        mask.candidates = mask.candidates[-1:]  # only the dense candidate: V = 1 everywhere
        mask.alpha = torch.nn.Parameter(torch.zeros(1))
        mask.finalize(0.0)
        assert mask.final
    x = torch.randn(2, model.spec.in_chans, model.spec.img_size, model.spec.img_size)
    torch.testing.assert_close(net(x), model(x), atol=1e-5, rtol=1e-5)


def test_pruning_narrows_and_finalises() -> None:
    torch.manual_seed(0)
    net = OfbSupernet(create_model("test_vit_rgb"))
    attn = net.attn_masks[0]
    attn.alpha.data = torch.full((len(attn.candidates),), -10.0)
    attn.alpha.data[attn.candidates.index((2, 8))] = 5.0
    attn.alpha.data[attn.candidates.index((1, 16))] = 5.0
    assert attn.prune(0.2, 0.5)
    assert attn.candidates == [(1, 16), (2, 8)] and not attn.final
    assert (attn.heads, attn.head_dim) == (2, 16) and int(attn.alive.sum()) == 32
    attn.alpha.data = torch.tensor([-10.0, 5.0])
    assert attn.prune(0.2, 0.5) and attn.final
    assert (attn.heads, attn.head_dim) == (2, 8)
    assert int((attn.scale != 0).sum()) == 16 and attn.alpha is None
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 10)


def test_parse_flops_target() -> None:
    assert parse_flops_target("0.5", 1000) == 500
    assert parse_flops_target(0.25, 1000) == 250
    assert parse_flops_target("1500", 2000) == 1500  # a bare count of 1000 or more is absolute MACs
    assert parse_flops_target("1.2G", 4_600_000_000) == 1_200_000_000
    assert parse_flops_target("800M", 4_600_000_000) == 800_000_000
    for bad in ("half", "-1", "2G", "2.0", "800"):  # a bare 1 < x < 1000 is a mistaken fraction
        with pytest.raises(ConfigError):
            parse_flops_target(bad, 1_000_000_000)


def test_pmim_parts() -> None:
    torch.manual_seed(0)
    mask = random_token_mask(3, 16, 0.25, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [4, 4, 4]
    img = torch.randn(3, 1, 16, 16) * 5 + 2
    target = local_normalize(img, 5)
    assert abs(float(target.mean())) < 0.3 and 0.5 < float(target.std()) < 1.5
    decoder = PixelDecoder(32, 4, 1)
    recon = decoder(torch.randn(3, 16, 16), torch.arange(0, 32, 2))
    assert recon.shape == img.shape
    loss = mim_loss(recon, target, mask, 4)
    loss.backward()
    assert decoder.proj.weight.grad[:, 1::2].abs().sum() == 0  # dropped embed channels get no gradient
