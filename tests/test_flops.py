"""The one FLOPs counter (``models.flops``) against torch's own FlopCounterMode on a real forward."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ofb_deploy.models import count_macs, create_model, get_arch_spec, list_models

DEIT = ["deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224"]
PRESETS = list_models("vit_fmnist_*") + list_models("test_*")


def _torch_macs(name: str) -> float:
    torch.manual_seed(0)
    model = create_model(name).eval()
    spec = model.spec
    x = torch.randn(1, spec.in_chans, spec.img_size, spec.img_size)
    # NOTE: the math SDPA backend runs q@k^T and attn@v as bmm, which FlopCounterMode counts (the fused CPU
    # kernel is not counted at all)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    counts = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    assert counts.get("aten.bmm", 0) > 0, "attention matmuls were not counted"
    return counter.get_total_flops() / 2  # FlopCounterMode counts FLOPs = 2 * MACs


@pytest.mark.parametrize("name", PRESETS)
def test_count_macs_matches_flop_counter_presets(name: str) -> None:
    ours = count_macs(get_arch_spec(name)).total
    assert ours == pytest.approx(_torch_macs(name), rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("name", DEIT)
def test_count_macs_matches_flop_counter_deit(name: str) -> None:
    ours = count_macs(get_arch_spec(name)).total
    assert ours == pytest.approx(_torch_macs(name), rel=0.01)


def test_deit_sanity_gmacs() -> None:
    # published numbers at 224 px: DeiT-T 1.26, DeiT-S 4.6, DeiT-B 17.6 GMACs
    expected = dict(zip(DEIT, (1.26, 4.6, 17.6), strict=True))
    for name, gmacs in expected.items():
        assert count_macs(get_arch_spec(name)).gmacs == pytest.approx(gmacs, rel=0.03)
