"""Swin end to end below the pipeline: timm weights and logits, the FLOPs counter against torch's, the arch spec,
the shift mask, the stage-by-stage finalisation against brute force, slicing exactness against a reference
written from the contract, and ONNX parity of dense and sliced Swins."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from synthetic import random_search
from torch.utils.flop_counter import FlopCounterMode

from ofb_deploy.artifacts import RunDir
from ofb_deploy.errors import ConfigError
from ofb_deploy.models import (
    ArchSpec,
    build_model,
    count_macs,
    count_params,
    create_model,
    get_arch_spec,
    list_models,
)
from ofb_deploy.models.checkpoint import read_state_dict
from ofb_deploy.search import build_supernet, load_searched_model
from ofb_deploy.search.cost import MacsCost
from ofb_deploy.search.finalize import TOLERANCE, closest_combination
from ofb_deploy.slicing import SliceRecord, load_subnet, slice_run, slice_subnet, split_scales

SMALL = [*list_models("test_swin*"), "swin_fmnist_tiny"]
TIMM_224 = ["swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224", "swin_base_patch4_window7_224"]
TOL = 1e-5


def timm_twin(spec: ArchSpec) -> torch.nn.Module:
    """timm's ``SwinTransformer`` of the same (uniform per stage) shape, randomly initialised."""
    heads = tuple(spec.num_heads[spec.stage_blocks(s).start] for s in range(spec.num_stages))
    return timm.create_model(
        "swin_tiny_patch4_window7_224",
        img_size=spec.img_size,
        patch_size=spec.patch_size,
        window_size=spec.window_size,
        embed_dim=spec.embed_dim,
        depths=spec.stage_depths,
        num_heads=heads,
        mlp_ratio=spec.mlp_hidden[0] / spec.embed_dim,
        in_chans=spec.in_chans,
        num_classes=spec.num_classes,
    ).eval()


def _perturbed(model: torch.nn.Module, seed: int) -> None:
    """Random values in every tensor, so no zero bias or unit norm hides a wrong mapping."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


# -- model --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*SMALL, pytest.param(TIMM_224[0], marks=pytest.mark.slow)])
def test_timm_weights_load_unchanged_with_identical_logits(name: str) -> None:
    torch.manual_seed(0)
    ours = create_model(name).eval()
    ref = timm_twin(ours.spec)
    _perturbed(ref, 1)
    state = ref.state_dict()
    assert set(state) == set(ours.state_dict())  # timm's names, nothing renamed or added
    ours.load_state_dict(state)
    x = torch.randn(2, ours.spec.in_chans, ours.spec.img_size, ours.spec.img_size)
    with torch.no_grad():
        out, want = ours(x), ref(x)
    assert want.abs().max() > 0.1
    assert float((out - want).abs().max()) <= TOL


@pytest.mark.parametrize("name", SMALL)
def test_shift_masks_match_timm(name: str) -> None:
    ours, ref = create_model(name), timm_twin(get_arch_spec(name))
    shifted = 0
    for stage, ref_stage in zip(ours.layers, ref.layers, strict=True):
        for block, ref_block in zip(stage.blocks, ref_stage.blocks, strict=True):
            assert (block.window, block.shift) == (ref_block.window_size[0], ref_block.shift_size[0])
            if ref_block.attn_mask is None:
                assert block.attn_mask is None
            else:
                shifted += 1
                assert torch.equal(block.attn_mask, ref_block.attn_mask)
    assert shifted >= 1  # every preset has shifted windows somewhere


def _torch_macs(model: torch.nn.Module, spec: ArchSpec) -> float:
    x = torch.randn(1, spec.in_chans, spec.img_size, spec.img_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    counts = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    assert counts.get("aten.bmm", 0) > 0, "the window attention matmuls were not counted"
    return counter.get_total_flops() / 2  # FlopCounterMode counts FLOPs = 2 * MACs


@pytest.mark.parametrize("name", [*SMALL, *(pytest.param(n, marks=pytest.mark.slow) for n in TIMM_224)])
def test_count_macs_matches_flop_counter_on_timm(name: str) -> None:
    spec = get_arch_spec(name)
    assert count_macs(spec).total == pytest.approx(_torch_macs(timm_twin(spec), spec), rel=0.01)


def test_published_swin_sizes() -> None:
    # Liu et al. 2021, Table 1: Swin-T 4.5G / 28M, Swin-S 8.7G / 50M, Swin-B 15.4G / 88M at 224 px
    for name, (gmacs, mparams) in zip(TIMM_224, ((4.5, 28), (8.7, 50), (15.4, 88)), strict=True):
        spec = get_arch_spec(name)
        assert count_macs(spec).gmacs == pytest.approx(gmacs, rel=0.01)
        assert count_params(spec) / 1e6 == pytest.approx(mparams, rel=0.02)


def test_sliced_swin_macs_and_params_follow_the_widths() -> None:
    spec = get_arch_spec("test_swin_rgb").with_widths(
        stage_widths=(16, 40, 72), num_heads=(1, 3, 2, 1, 5), head_dim=(8, 8, 16, 8, 8), mlp_hidden=(8, 48, 16, 96, 40)
    )
    model = build_model(spec)
    assert count_params(spec) == sum(p.numel() for p in model.parameters())
    assert count_macs(spec).total == pytest.approx(_torch_macs(model, spec), rel=1e-9)


# -- arch spec ----------------------------------------------------------------------------------------------------
def test_swin_spec_json_round_trip_and_vit_json_unchanged(tmp_path: Path) -> None:
    spec = get_arch_spec("test_swin_rgb")
    assert ArchSpec.load(spec.save(tmp_path / "swin.json")) == spec
    doc = spec.to_dict()
    assert doc["family"] == "swin" and doc["stage_dims"] == [24, 48, 96] and doc["depth"] == 5
    vit = get_arch_spec("test_vit").to_dict()
    assert vit["family"] == "vit" and not {"stage_depths", "stage_dims", "window_size"} & set(vit)
    del vit["family"]  # a spec written before the family field existed
    assert ArchSpec.from_dict(vit) == get_arch_spec("test_vit")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stage_dims": [24, 32]}, "must equal embed_dim"),
        ({"stage_dims": [16]}, "one positive width per stage"),
        ({"stage_depths": [2, 1]}, "sum to 3"),
        ({"window_size": 3}, "does not tile"),
        ({"img_size": 6}, "cannot be halved"),
        ({"family": "vit"}, "are for family swin"),
        ({"family": "convnet"}, "family = .convnet.: input should be .vit. or .swin."),
    ],
)
def test_bad_swin_specs_fail_with_one_line(change: dict, message: str) -> None:
    doc = get_arch_spec("test_swin").to_dict()
    doc.update(change)
    with pytest.raises(ConfigError, match=message) as exc:
        ArchSpec.from_dict(doc)
    assert "\n" not in str(exc.value)


# -- search: stage-by-stage finalisation ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_finalisation_programme_matches_brute_force(seed: int) -> None:
    torch.manual_seed(3)
    net = build_supernet(create_model("test_swin"))
    gen = torch.Generator().manual_seed(seed)
    keep = {}
    for mask in net.masks():  # two candidates per module (2^10 combinations), random logits
        mask.alpha.data = torch.randn(len(mask.candidates), generator=gen)
        picks = torch.randperm(len(mask.candidates), generator=gen)[:2].tolist()
        keep[mask.name] = [i in picks for i in range(len(mask.candidates))]
    dense = count_macs(net.spec).total
    options = [[i for i, k in enumerate(keep[m.name]) if k] for m in net.masks()]
    logp = [torch.log_softmax(m.alpha.detach(), 0) for m in net.masks()]
    combos = []
    for combo in itertools.product(*options):
        cand = {m.name: m.candidates[i] for m, i in zip(net.masks(), combo, strict=True)}
        stages = tuple(cand[m.name] for m in net.stage_masks)
        heads = [cand[m.name] for m in net.attn_masks]
        spec = net.spec.with_widths(stages, tuple(h for h, _ in heads), tuple(d for _, d in heads),
                                    tuple(cand[m.name] for m in net.mlp_masks))  # fmt: skip
        score = sum(float(lp[i]) for lp, i in zip(logp, combo, strict=True))
        combos.append((count_macs(spec).total, score))
    for fraction in (0.35, 0.5, 0.65, 0.8):
        target = fraction * dense
        macs, picks = closest_combination(net, MacsCost(net.spec), target, keep)
        chosen = sum(float(lp[picks[m.name]]) for lp, m in zip(logp, net.masks(), strict=True))
        inside = [s for m, s in combos if abs(m - target) <= 0.9 * TOLERANCE * target]
        if inside:  # the most probable combination inside the band, judged on exact MACs
            assert abs(macs - target) <= TOLERANCE * target
            assert chosen >= max(inside) - 1e-9
        else:  # else the closest one
            best = min(abs(m - target) for m, _ in combos)
            assert abs(macs - target) <= best + 1e-4 * dense


@pytest.mark.parametrize("name", SMALL)
def test_macs_cost_is_the_flops_counter_stage_by_stage(name: str) -> None:
    """The cost model's terms add up to ``count_macs`` for any stage widths, and its expectation is the soft MACs."""
    torch.manual_seed(0)
    net = build_supernet(create_model(name))
    cost = MacsCost(net.spec)
    gen = torch.Generator().manual_seed(1)
    for mask in net.masks():
        mask.alpha.data = torch.randn(len(mask.candidates), generator=gen)
    sub = net.spec.with_widths(
        tuple(m.candidates[0] for m in net.stage_masks),
        tuple(m.candidates[1][0] for m in net.attn_masks),
        tuple(m.candidates[1][1] for m in net.attn_masks),
        tuple(m.candidates[0] for m in net.mlp_masks),
    )
    assert cost.of_spec(sub) == count_macs(sub).total and cost.dense == count_macs(net.spec).total
    expected, soft = cost.expected(net).detach(), net.soft_macs().detach()
    assert float(expected) == pytest.approx(float(soft), rel=1e-6)


# -- slicing ------------------------------------------------------------------------------------------------------
def _relative_index(window: int) -> torch.Tensor:
    pos = [(y, x) for y in range(window) for x in range(window)]
    return torch.tensor([[(a[0] - b[0] + window - 1) * (2 * window - 1) + a[1] - b[1] + window - 1 for b in pos]
                         for a in pos])  # fmt: skip


def _region(coord: int, grid: int, window: int, shift: int) -> int:
    return 0 if coord < grid - window else (1 if coord < grid - shift else 2)


def reference_forward(state: dict, record: SliceRecord, scales: dict, x: torch.Tensor) -> torch.Tensor:
    """The searched Swin's forward from the contract: dense weights, zero-masked units, windows one by one."""
    spec, eps = record.dense_arch, 1e-5
    kept = [list(idx) for idx in record.stages]

    def ln(t: torch.Tensor, prefix: str, cols: list[int]) -> torch.Tensor:
        return F.layer_norm(t, (len(cols),), state[prefix + ".weight"][cols], state[prefix + ".bias"][cols], eps)

    def stage_scale(s: int) -> torch.Tensor:
        return scales[f"scale.{spec.embed_name(s)}"][kept[s]]

    t = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=spec.patch_size)
    t = ln(t.permute(0, 2, 3, 1)[..., kept[0]], "patch_embed.norm", kept[0]) * stage_scale(0)
    for s in range(spec.num_stages):
        if s:
            width, p = spec.stage_dims[s - 1], f"layers.{s}.downsample."
            cols = [g * width + c for g in range(4) for c in kept[s - 1]]
            groups = torch.cat([t[:, 0::2, 0::2], t[:, 1::2, 0::2], t[:, 0::2, 1::2], t[:, 1::2, 1::2]], -1)
            t = F.linear(ln(groups, p + "norm", cols), state[p + "reduction.weight"][kept[s]][:, cols]) * stage_scale(s)
        for j, i in enumerate(spec.stage_blocks(s)):
            t = t + _reference_attention(state, record, scales, i, ln(t, spec.block_prefix(i) + "norm1", kept[s]), j)
            p, m = spec.block_prefix(i), list(record.blocks[i].mlp_idx)
            y = F.linear(
                ln(t, p + "norm2", kept[s]), state[p + "mlp.fc1.weight"][:, kept[s]], state[p + "mlp.fc1.bias"]
            )
            s_mlp = torch.zeros(spec.mlp_hidden[i])
            s_mlp[m] = scales[f"scale.{p}mlp"][m]
            t = t + F.linear(
                F.gelu(y * s_mlp), state[p + "mlp.fc2.weight"][kept[s]], state[p + "mlp.fc2.bias"][kept[s]]
            )
    t = ln(t, "norm", kept[-1]).mean((1, 2))
    return F.linear(t, state["head.fc.weight"][:, kept[-1]], state["head.fc.bias"])


def _reference_attention(state, record, scales, i: int, y: torch.Tensor, j: int) -> torch.Tensor:
    spec, block, p = record.dense_arch, record.blocks[i], record.dense_arch.block_prefix(i)
    stage = spec.block_stage[i]
    e, grid = list(record.stages[stage]), spec.stage_grid(stage)
    window, shift = spec.stage_window(stage)
    shift = shift if j % 2 else 0
    h, d = spec.num_heads[i], spec.head_dim[i]
    m_attn = torch.zeros(h, d)
    for head, chans in zip(block.head_idx, block.channel_idx, strict=True):
        m_attn[head, list(chans)] = scales[f"scale.{p}attn"][head, list(chans)]
    bias = state[p + "attn.relative_position_bias_table"][_relative_index(window)].permute(2, 0, 1)
    y = torch.roll(y, (-shift, -shift), (1, 2))
    out = torch.zeros(*y.shape[:3], len(e))
    for wy, wx in itertools.product(range(grid // window), repeat=2):
        rows, cols = slice(wy * window, (wy + 1) * window), slice(wx * window, (wx + 1) * window)
        tok = y[:, rows, cols].reshape(y.shape[0], window * window, -1)
        qkv = F.linear(tok, state[p + "attn.qkv.weight"][:, e], state[p + "attn.qkv.bias"])
        q, k, v = (t * m_attn[:, None] for t in qkv.reshape(*tok.shape[:2], 3, h, d).permute(2, 0, 3, 1, 4))
        logits = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        if shift:
            labels = torch.tensor([3 * _region(wy * window + a, grid, window, shift) + _region(wx * window + b, grid,
                                   window, shift) for a in range(window) for b in range(window)])  # fmt: skip
            logits = logits - 100.0 * (labels[:, None] != labels[None, :])
        o = (logits.softmax(-1) @ v).transpose(1, 2).reshape(*tok.shape[:2], h * d)
        o = F.linear(o, state[p + "attn.proj.weight"][e], state[p + "attn.proj.bias"][e])
        out[:, rows, cols] = o.reshape(y.shape[0], window, window, -1)
    return torch.roll(out, (shift, shift), (1, 2))


@pytest.mark.parametrize("name", SMALL)
def test_slice_exact_to_reference_and_search(tmp_path: Path, name: str) -> None:
    spec = get_arch_spec(name, num_classes=10)
    run = RunDir(tmp_path / "run", create=True)
    arch = random_search(run, spec, seed=5)
    weights, scales = split_scales(read_state_dict(run.searched_weights_path))
    record = SliceRecord.from_arch(arch)
    assert record.spec.stage_dims != spec.stage_dims and len(record.stage_idx) == spec.num_stages
    x = torch.randn(3, spec.in_chans, spec.img_size, spec.img_size)
    with torch.no_grad():
        ref = reference_forward(weights, record, scales, x)
        searched = load_searched_model(run)(x)
        sliced = slice_subnet(weights, record, scales)(x)
        slice_run(run)
        saved = load_subnet(run.slice_dir)(x)
    assert ref.abs().max() > 0.1
    assert float((searched - ref).abs().max()) <= TOL
    assert float((sliced - ref).abs().max()) <= TOL and torch.equal(saved, sliced)
    assert load_subnet(run.slice_dir).spec == record.spec


def test_handwritten_swin_widths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ofb_deploy.cli import main
    from ofb_deploy.models import save_model_dir

    dense = create_model("test_swin_rgb")
    _perturbed(dense, 2)
    dense_dir = save_model_dir(dense, tmp_path / "dense")
    blocks = [{"heads": 2, "head_dim": 8, "mlp_hidden": 24}] * 4 + [{"heads": 3, "head_dim": 16, "mlp_hidden": 96}]
    arch = tmp_path / "widths.json"
    arch.write_text(json.dumps({"stage_dims": [16, 32, 64], "blocks": blocks}))
    assert main(["slice", str(tmp_path / "s"), "--arch", str(arch), "--checkpoint", str(dense_dir)]) == 0
    capsys.readouterr()
    sub = load_subnet(RunDir(tmp_path / "s").slice_dir)
    assert sub.spec.stage_dims == (16, 32, 64) and sub.spec.num_heads == (2, 2, 2, 2, 3)
    arch.write_text(json.dumps({"embed_dim": 16, "blocks": blocks}))  # a Swin needs its stage widths
    assert main(["slice", str(tmp_path / "t"), "--arch", str(arch), "--checkpoint", str(dense_dir)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stage_dims: missing" in err


# -- ONNX ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sliced_swin_exports_with_parity(tmp_path: Path) -> None:
    from ofb_deploy.engines import make_runner
    from ofb_deploy.onnxtools.export import export_onnx

    spec = get_arch_spec("swin_fmnist_tiny")
    run = RunDir(tmp_path / "run", create=True)
    random_search(run, spec, seed=2)
    slice_run(run)
    model = load_subnet(run.slice_dir)
    info = export_onnx(model, tmp_path / "subnet.onnx")
    assert info["opset"] == 17 and info["inputs"]["input"]["shape"][0] == "batch"
    assert info["layernorm_ops"] == sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    with make_runner("ort-cpu", tmp_path / "subnet.onnx") as ort_runner, make_runner("torch", model) as ref:
        for batch in (1, 5):
            feed = {"input": np.random.default_rng(batch).normal(size=(batch, 1, 32, 32)).astype(np.float32)}
            out, want = ort_runner.infer(feed)["logits"], ref.infer(feed)["logits"]
            assert out.shape == (batch, 10) and float(np.abs(out - want).max()) < 1e-4
