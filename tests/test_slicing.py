"""Slicing: exactness against the searched model, save/load, alignment, hand-written widths, CLI errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from synthetic import random_search

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli import main
from ofb_deploy.data import DataConfig, build_splits
from ofb_deploy.errors import ConfigError, ModelError
from ofb_deploy.models import count_macs, create_model, get_arch_spec, list_models, save_model_dir
from ofb_deploy.models.checkpoint import read_state_dict
from ofb_deploy.models.vit import LN_EPS
from ofb_deploy.slicing import SliceRecord, align_record, load_subnet, slice_run, slice_subnet, split_scales
from ofb_deploy.utils.io import read_json

TOL = 1e-5
PRESETS = [*list_models("test_*"), "vit_fmnist_tiny"]
VIT_PRESETS = [n for n in PRESETS if get_arch_spec(n).family == "vit"]  # reference_forward is the ViT's (Swin's:
# tests/test_swin.py)


# -- an independent reference: the searched model's forward written from the contract, with full-width masks --
def _mask(values: torch.Tensor, keep: list[int]) -> torch.Tensor:
    out = torch.zeros_like(values)
    out[keep] = values[keep]
    return out


def reference_forward(state: dict, record: SliceRecord, scales: dict | None, x: torch.Tensor) -> torch.Tensor:
    """Masked forward of the dense weights (the semantics in slicing/slice.py), no slicing code involved."""
    spec, e = record.dense_arch, list(record.embed_idx)

    def scale(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        return scales[key] if scales is not None else torch.ones(shape)

    def ln(t: torch.Tensor, prefix: str) -> torch.Tensor:  # LayerNorm over the kept channels only
        return F.layer_norm(t, (len(e),), state[prefix + ".weight"][e], state[prefix + ".bias"][e], LN_EPS)

    tok = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=spec.patch_size)
    tok = torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), tok.flatten(2).transpose(1, 2)], 1)
    tok = ((tok + state["pos_embed"]) * _mask(scale("scale.embed", (spec.embed_dim,)), e))[..., e]
    for i, block in enumerate(record.blocks):
        p, h, d = f"blocks.{i}.", spec.num_heads[i], spec.head_dim[i]
        m_attn = torch.zeros(h, d)
        s_attn = scale(f"scale.{p}attn", (h, d))
        for head, chans in zip(block.head_idx, block.channel_idx, strict=True):
            m_attn[head, list(chans)] = s_attn[head, list(chans)]
        y = ln(tok, p + "norm1")
        qkv = F.linear(y, state[p + "attn.qkv.weight"][:, e], state.get(p + "attn.qkv.bias"))
        q, k, v = (t * m_attn[:, None] for t in qkv.reshape(*y.shape[:2], 3, h, d).permute(2, 0, 3, 1, 4))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(*y.shape[:2], h * d)
        tok = tok + F.linear(o, state[p + "attn.proj.weight"][e], state[p + "attn.proj.bias"][e])
        y = F.linear(ln(tok, p + "norm2"), state[p + "mlp.fc1.weight"][:, e], state[p + "mlp.fc1.bias"])
        y = F.gelu(y * _mask(scale(f"scale.{p}mlp", (spec.mlp_hidden[i],)), list(block.mlp_idx)))
        tok = tok + F.linear(y, state[p + "mlp.fc2.weight"][e], state[p + "mlp.fc2.bias"][e])
    return F.linear(ln(tok, "norm")[:, 0], state["head.weight"][:, e], state["head.bias"])


def real_images(spec, n: int = 4) -> torch.Tensor:
    """``n`` Fashion-MNIST test images fitted to ``spec`` (size, channels, normalisation)."""
    splits = build_splits(DataConfig(val_size=n, calib_size=1, train_size=1), spec, train_augment=False)
    return torch.stack([splits.val[i][0] for i in range(n)])


def searched(tmp_path: Path, spec, seed: int = 0) -> tuple[RunDir, dict, dict, SliceRecord]:
    run = RunDir(tmp_path / "run", create=True)
    arch = random_search(run, spec, seed=seed)
    weights, scales = split_scales(read_state_dict(run.searched_weights_path))
    return run, weights, scales, SliceRecord.from_arch(arch)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# -- exactness ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VIT_PRESETS)
def test_slice_exact_to_searched_model(tmp_path: Path, name: str) -> None:
    spec = get_arch_spec(name)
    run, weights, scales, record = searched(tmp_path, spec, seed=1)
    x = real_images(spec)
    with torch.no_grad():
        ref = reference_forward(weights, record, scales, x)
        out = slice_subnet(weights, record, scales)(x)
    assert ref.abs().max() > 0.1  # logits are not trivially tiny
    assert max_err(out, ref) <= TOL
    assert record.spec.head_dim != spec.head_dim or record.spec.embed_dim != spec.embed_dim


@pytest.mark.slow
def test_slice_exact_deit_small_random_arch(tmp_path: Path) -> None:
    spec = get_arch_spec("deit_small_patch16_224", num_classes=10)
    run, weights, scales, record = searched(tmp_path, spec, seed=3)
    x = real_images(spec, n=2)
    with torch.no_grad():
        ref = reference_forward(weights, record, scales, x)
        out = slice_subnet(weights, record, scales)(x)
    assert max_err(out, ref) <= TOL


@pytest.mark.parametrize("name", [*PRESETS, pytest.param("deit_small_patch16_224", marks=pytest.mark.slow)])
def test_slice_exact_to_search_reference(tmp_path: Path, name: str) -> None:
    # the contract's reference: helper B's masked search forward with the final masks, not our own code
    from ofb_deploy.search import load_searched_model

    spec = get_arch_spec(name, num_classes=10)
    run, weights, scales, record = searched(tmp_path, spec, seed=7)
    x = real_images(spec, n=2 if spec.img_size > 64 else 4)
    with torch.no_grad():
        ref = load_searched_model(run)(x)
        slice_run(run)
        out = load_subnet(run.slice_dir)(x)
    assert max_err(out, ref) <= TOL


def test_slice_keeps_original_attention_scale(tmp_path: Path) -> None:
    # without the sqrt(d'/d) fold into q, a narrowed head dim changes the logits: the test can fail
    spec = get_arch_spec("test_vit")
    run, weights, scales, record = searched(tmp_path, spec, seed=4)
    assert any(b.head_dim < d for b, d in zip(record.blocks, spec.head_dim, strict=True))
    model = slice_subnet(weights, record, scales)
    x = real_images(spec)
    with torch.no_grad():
        ref = reference_forward(weights, record, scales, x)
        for i, block in enumerate(model.blocks):
            c = math.sqrt(record.blocks[i].head_dim / spec.head_dim[i])
            q = block.attn.num_heads * block.attn.head_dim
            block.attn.qkv.weight[:q] /= c
            block.attn.qkv.bias[:q] /= c
        assert max_err(model(x), ref) > 10 * TOL


@pytest.mark.slow
def test_sliced_model_has_no_masks_or_index_ops(tmp_path: Path) -> None:
    spec = get_arch_spec("test_vit")
    run, weights, scales, record = searched(tmp_path, spec, seed=1)
    program = torch.export.export(slice_subnet(weights, record, scales), (real_images(spec, n=2),))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "aten.scaled_dot_product_attention.default" in ops
    assert not [op for op in ops if any(bad in op for bad in ("index", "gather", "mul", "where"))]
    assert not [n for n in program.graph.nodes if n.kwargs.get("scale") is not None]  # plain 1/sqrt(d') scale


# -- the slice stage, save and load --------------------------------------------------------------------------------
def test_slice_run_writes_loadable_subnet(tmp_path: Path) -> None:
    spec = get_arch_spec("vit_fmnist_tiny")
    run, weights, scales, record = searched(tmp_path, spec, seed=2)
    summary = slice_run(run)
    doc = read_json(run.slice_dir / "subnet.json")
    assert doc["flops"] == count_macs(record.spec).total == summary["flops"] < count_macs(spec).total
    assert doc["arch"]["head_dim"] == [b.head_dim for b in record.blocks]
    assert doc["source_model"].endswith("search") and doc["in_chans"] == 1 and doc["num_classes"] == 10
    assert run.is_done("slice")
    model = load_subnet(run.slice_dir)
    assert type(model).__name__ == "OfbViT" and model.spec == record.spec
    x = real_images(spec)
    with torch.no_grad():
        assert max_err(model(x), reference_forward(weights, record, scales, x)) <= TOL
    replay = SliceRecord.load(run.slice_dir / "slice_record.json")
    assert replay == record
    again = slice_subnet(weights, replay, scales).state_dict()
    assert all(torch.equal(again[k], v) for k, v in model.state_dict().items())
    # the folder is a normal model folder
    assert create_model(f"local-dir:{run.slice_dir}").spec == record.spec


def test_load_subnet_shape_mismatch_is_one_line(tmp_path: Path) -> None:
    spec = get_arch_spec("test_vit")
    run, *_ = searched(tmp_path, spec)
    slice_run(run)
    path = run.slice_dir / "subnet.json"
    doc = read_json(path)
    doc["arch"]["mlp_hidden"][0] += 1
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelError) as info:
        load_subnet(run.slice_dir)
    assert "shape" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(Exception, match="subnet.json"):
        load_subnet(tmp_path)


def test_bad_search_output_is_one_line(tmp_path: Path, capsys) -> None:
    spec = get_arch_spec("test_vit")
    run, *_ = searched(tmp_path, spec)
    arch = read_json(run.arch_path)
    arch["blocks"][0]["head_idx"] = [0, 0]
    run.arch_path.write_text(json.dumps(arch))
    assert main(["slice", str(run.root)]) == ConfigError.exit_code
    assert "head_idx" in capsys.readouterr().err
    assert main(["slice", str(tmp_path / "nope")]) != 0


# -- alignment ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("multiple", [8, 16])
def test_align_rounds_widths_and_stays_exact(tmp_path: Path, multiple: int) -> None:
    spec = get_arch_spec("vit_fmnist_tiny")
    run, weights, scales, record = searched(tmp_path, spec, seed=5)
    aligned = align_record(record, weights, multiple, scales)
    sub = aligned.spec
    for width, dense in [(sub.embed_dim, spec.embed_dim), *zip(sub.head_dim, spec.head_dim, strict=True)]:
        assert width % multiple == 0 or width == dense
    assert all(m % multiple == 0 or m == 256 for m in sub.mlp_hidden)
    assert set(record.embed_idx) <= set(aligned.embed_idx)
    info = aligned.info["align"]
    assert info["flops_after"] == count_macs(sub).total >= info["flops_before"] == count_macs(record.spec).total
    x = real_images(spec)
    with torch.no_grad():
        out = slice_subnet(weights, aligned, scales)(x)
        assert max_err(out, reference_forward(weights, aligned, scales, x)) <= TOL
        if aligned.embed_idx == record.embed_idx:  # units added to heads/MLP start switched off
            assert max_err(out, reference_forward(weights, record, scales, x)) <= TOL


def test_align_cli_reports_flops_change(tmp_path: Path, capsys) -> None:
    spec = get_arch_spec("vit_fmnist_tiny")
    run, *_ = searched(tmp_path, spec, seed=6)
    assert main(["slice", str(run.root), "--align", "16"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs change" in out
    doc = read_json(run.slice_dir / "subnet.json")
    assert doc["align"] == 16 and "align_flops_change_pct" in doc
    assert main(["slice", str(run.root), "--align", "7"]) != 0


# -- hand-written architectures -------------------------------------------------------------------------------------
def _dense_dir(tmp_path: Path) -> Path:
    model = create_model("test_vit")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return save_model_dir(model, tmp_path / "dense")


GOOD = {"embed_dim": 24, "blocks": [{"heads": 1, "head_dim": 8, "mlp_hidden": 40}] * 2}


def test_handwritten_counts_pick_by_magnitude(tmp_path: Path, capsys) -> None:
    dense_dir = _dense_dir(tmp_path)
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(GOOD))
    run = RunDir.for_output(tmp_path / "sub")
    assert main(["slice", str(run.root), "--arch", str(arch), "--checkpoint", str(dense_dir)]) == 0
    model = load_subnet(run.slice_dir)
    assert model.spec.embed_dim == 24 and model.spec.num_heads == (1, 1) and model.spec.mlp_hidden == (40, 40)
    assert run.is_done("slice")
    record = SliceRecord.load(run.slice_dir / "slice_record.json")
    state = read_state_dict(dense_dir / "model.safetensors")
    # the kept MLP neurons of block 0 are the ones with the largest fc1 + fc2 (squared L2) magnitude
    fc1 = state["blocks.0.mlp.fc1.weight"].pow(2).sum(1)
    fc2 = state["blocks.0.mlp.fc2.weight"].pow(2).sum(0)
    score = fc1 / fc1.mean() + fc2 / fc2.mean()
    assert set(record.blocks[0].mlp_idx) == set(score.topk(40).indices.tolist())
    x = real_images(model.spec)
    with torch.no_grad():
        assert max_err(model(x), reference_forward(state, record, None, x)) <= TOL
    # a weights file needs --model
    weights = dense_dir / "model.safetensors"
    args = ["slice", str(tmp_path / "s2"), "--arch", str(arch), "--checkpoint", str(weights)]
    assert main(args) == ConfigError.exit_code
    assert main([*args, "--model", "test_vit"]) == 0
    assert main([*args, "--model", "vit_fmnist_tiny"]) == ModelError.exit_code  # does not fit the weights


def _bad(doc: dict, **change) -> dict:
    doc = json.loads(json.dumps(doc))
    for key, value in change.items():
        if key.startswith("b_"):
            doc["blocks"][0][key[2:]] = value
        else:
            doc[key] = value
    return doc


BAD_FILES = {
    "more_heads": (_bad(GOOD, b_heads=3), "heads"),
    "zero_width": (_bad(GOOD, b_mlp_hidden=0), "blocks[0].mlp_hidden = 0: input should be greater than 0"),
    "negative_width": (_bad(GOOD, embed_dim=-4), "embed_dim = -4: input should be greater than 0"),
    "too_wide": (_bad(GOOD, b_head_dim=17), "larger"),
    "wrong_blocks": (_bad(GOOD, blocks=GOOD["blocks"][:1]), "2 entries"),
    "missing_key": ({"blocks": GOOD["blocks"]}, "embed_dim: missing"),
    "missing_block_key": (_bad(GOOD, blocks=[{"heads": 1, "head_dim": 8}] * 2), "blocks[0].mlp_hidden: missing"),
    "not_a_number": (_bad(GOOD, b_heads="two"), "integer"),
    "malformed": ('{"embed_dim": 24, "blocks": [', "malformed"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_handwritten_bad_file_is_one_line(tmp_path: Path, capsys, case: str) -> None:
    dense_dir = _dense_dir(tmp_path)
    doc, needle = BAD_FILES[case]
    arch = tmp_path / "arch.json"
    arch.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    out = tmp_path / "sub"
    code = main(["slice", str(out), "--arch", str(arch), "--checkpoint", str(dense_dir)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()  # nothing written


def test_slice_arch_accepts_the_search_result(tmp_path: Path) -> None:
    """A copy of the search's own arch document, edited or not, is a width file: extra keys are ignored."""
    spec = get_arch_spec("test_vit")
    searched_run, *_ = searched(tmp_path, spec)
    doc = read_json(searched_run.arch_path)
    doc["blocks"][1]["mlp_hidden"] = 16  # an edit: the indices still list the search's neurons, the widths win
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    run = RunDir.for_output(tmp_path / "hand")
    assert main(["slice", str(run.root), "--arch", str(edited), "--checkpoint", str(_dense_dir(tmp_path))]) == 0
    sub = load_subnet(run.slice_dir).spec
    assert sub.embed_dim == doc["embed_dim"] and sub.mlp_hidden[1] == 16
    assert list(sub.num_heads) == [b["heads"] for b in doc["blocks"]]
