"""Model zoo, arch spec and checkpoints: every registered model built and run, round trips, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from ofb_deploy.errors import ConfigError, ModelError
from ofb_deploy.models import (
    ArchSpec,
    count_params,
    create_model,
    get_arch_spec,
    list_models,
    load_model_dir,
    save_model_dir,
)

SMALL = [n for n in list_models() if get_arch_spec(n).img_size < 224]
LARGE = [n for n in list_models() if get_arch_spec(n).img_size >= 224]


def _forward_check(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    spec = model.spec
    assert count_params(spec) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        out = model(torch.randn(1, spec.in_chans, spec.img_size, spec.img_size))
    assert out.shape == (1, spec.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SMALL)
def test_small_presets_build_and_run(name: str) -> None:
    _forward_check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_224_models_build_and_run(name: str) -> None:
    _forward_check(name)


def test_deit_small_is_registered_at_224() -> None:
    spec = get_arch_spec("deit_small_patch16_224")
    assert (spec.img_size, spec.embed_dim, spec.depth, spec.num_classes) == (224, 384, 12, 1000)


def test_overrides_change_head_and_input() -> None:
    model = create_model("test_vit_rgb", num_classes=7, in_chans=1, img_size=48)
    assert model.head.out_features == 7
    assert model.patch_embed.proj.in_channels == 1
    assert model.pos_embed.shape[1] == (48 // 8) ** 2 + 1
    assert len(model.spec.mean) == 1


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelError) as exc:
        create_model("no_such_vit")
    assert "vit_fmnist_tiny" in str(exc.value) and "test_vit" in str(exc.value)


def test_arch_spec_json_round_trip(tmp_path) -> None:
    spec = get_arch_spec("test_vit_rgb").replace(num_heads=(3, 2, 1), mlp_hidden=(96, 40, 8))
    path = spec.save(tmp_path / "arch.json")
    assert ArchSpec.load(path) == spec
    assert ArchSpec.from_dict(json.loads(path.read_text())) == spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown key"),
        ({"embed_dim": None}, "missing key"),
        ({"embed_dim": -4}, "embed_dim"),
        ({"num_heads": [1, 2]}, "entries, expected 2"),
        ({"mlp_hidden": [8, 0, 8]}, r"mlp_hidden\[1\]"),
        ({"img_size": 30}, "multiple of patch_size"),
        ({"depth": 5}, "depth"),
        ({"schema_version": 99}, "schema_version"),
    ],
)
def test_arch_spec_from_dict_rejects_bad_documents(change: dict, message: str) -> None:
    doc = get_arch_spec("test_vit_rgb").to_dict()
    for key, value in change.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    with pytest.raises(ConfigError, match=message):
        ArchSpec.from_dict(doc)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, spec: ArchSpec) -> bool:
    x = torch.randn(2, spec.in_chans, spec.img_size, spec.img_size)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_model_dir_round_trip_and_local_dir(tmp_path) -> None:
    torch.manual_seed(1)
    model = create_model("test_vit")
    save_model_dir(model, tmp_path, meta={"metrics": {"top1": 1.0}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    assert _same_outputs(model, load_model_dir(tmp_path), model.spec)
    assert _same_outputs(model, create_model(f"local-dir:{tmp_path}"), model.spec)
    assert json.loads((tmp_path / "model.json").read_text())["metrics"] == {"top1": 1.0}


def test_pth_and_safetensors_checkpoints_load(tmp_path) -> None:
    torch.manual_seed(2)
    model = create_model("test_vit")
    torch.save(model.state_dict(), tmp_path / "w.pth")
    torch.save({"model": model.state_dict()}, tmp_path / "wrapped.pth")
    save_model_dir(model, tmp_path)
    for ckpt in ("w.pth", "wrapped.pth", "model.safetensors"):
        assert _same_outputs(model, create_model("test_vit", checkpoint=tmp_path / ckpt), model.spec)


def test_bad_checkpoints_fail_with_one_line(tmp_path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    torch.save(create_model("test_vit_rgb").state_dict(), tmp_path / "other.pth")
    for path, message in [
        ("junk.safetensors", "cannot read"),
        ("other.pth", "does not fit"),
        ("nope.pth", "not found"),
    ]:
        with pytest.raises(ModelError, match=message) as exc:
            create_model("test_vit", checkpoint=tmp_path / path)
        assert "\n" not in str(exc.value)
