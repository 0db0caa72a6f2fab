"""Registered model variants: timm DeiT/ViT and Swin shapes and small presets for CPU work and tests.

Each entry is data: a function returning the ``ArchSpec``. ``test_*`` models are tiny on purpose; tests
parametrize over ``list_models("test_*")``.
"""

from __future__ import annotations

from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.registry import register_model

FMNIST_MEAN = (0.2860,)
FMNIST_STD = (0.3530,)


def _vit(name: str, embed: int, depth: int, heads: int) -> ArchSpec:
    return ArchSpec.uniform(name, img_size=224, patch_size=16, embed_dim=embed, depth=depth, num_heads=heads)


@register_model
def deit_tiny_patch16_224() -> ArchSpec:
    """DeiT-T (Touvron et al. 2021): 192 wide, 12 blocks of 3 heads; 1.26 GMACs."""
    return _vit("deit_tiny_patch16_224", 192, 12, 3)


@register_model
def deit_small_patch16_224() -> ArchSpec:
    """DeiT-S: 384 wide, 12 blocks of 6 heads; 4.6 GMACs."""
    return _vit("deit_small_patch16_224", 384, 12, 6)


@register_model
def deit_base_patch16_224() -> ArchSpec:
    """DeiT-B: 768 wide, 12 blocks of 12 heads; 17.6 GMACs."""
    return _vit("deit_base_patch16_224", 768, 12, 12)


@register_model
def vit_tiny_patch16_224() -> ArchSpec:
    """ViT-Ti/16 (same shape as DeiT-T)."""
    return _vit("vit_tiny_patch16_224", 192, 12, 3)


@register_model
def vit_small_patch16_224() -> ArchSpec:
    """ViT-S/16 (same shape as DeiT-S)."""
    return _vit("vit_small_patch16_224", 384, 12, 6)


@register_model
def vit_base_patch16_224() -> ArchSpec:
    """ViT-B/16 (same shape as DeiT-B)."""
    return _vit("vit_base_patch16_224", 768, 12, 12)


def _fmnist(name: str, embed: int, depth: int, heads: int, mlp_ratio: float) -> ArchSpec:
    return ArchSpec.uniform(
        name,
        img_size=32,
        patch_size=4,
        embed_dim=embed,
        depth=depth,
        num_heads=heads,
        mlp_ratio=mlp_ratio,
        in_chans=1,
        num_classes=10,
        mean=FMNIST_MEAN,
        std=FMNIST_STD,
    )


@register_model
def vit_fmnist_tiny() -> ArchSpec:
    """Fashion-MNIST preset: 32 px (28 padded), patch 4, 64 wide, 4 blocks of 4x16 heads, MLP 256."""
    return _fmnist("vit_fmnist_tiny", 64, 4, 4, 4.0)


@register_model
def vit_fmnist_small() -> ArchSpec:
    """Fashion-MNIST preset: 32 px, patch 4, 128 wide, 6 blocks of 4x32 heads, MLP 512."""
    return _fmnist("vit_fmnist_small", 128, 6, 4, 4.0)


@register_model
def test_vit() -> ArchSpec:
    """Tiny model for tests: 16 px grey, patch 4, 32 wide, 2 blocks of 2x16 heads, MLP 64."""
    return ArchSpec.uniform(
        "test_vit",
        img_size=16,
        patch_size=4,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        in_chans=1,
        num_classes=10,
        mean=FMNIST_MEAN,
        std=FMNIST_STD,
    )


@register_model
def test_vit_rgb() -> ArchSpec:
    """Tiny RGB model for tests: 32 px, patch 8, 48 wide, 3 blocks of 3x16 heads (DeiT-T's odd head count)."""
    return ArchSpec.uniform(
        "test_vit_rgb",
        img_size=32,
        patch_size=8,
        embed_dim=48,
        depth=3,
        num_heads=3,
        mlp_ratio=2.0,
        num_classes=10,
    )


# -- Swin (Liu et al. 2021): timm's names, so `pretrained=True` fetches timm's weights for them -----------------
def _swin(name: str, embed: int, depths: tuple[int, ...], heads: tuple[int, ...]) -> ArchSpec:
    return ArchSpec.swin(
        name, img_size=224, patch_size=4, window_size=7, embed_dim=embed, depths=depths, num_heads=heads
    )


@register_model
def swin_tiny_patch4_window7_224() -> ArchSpec:
    """Swin-T: 96-192-384-768 wide, 2-2-6-2 blocks of 32-dim heads, window 7; 4.5 GMACs, 28M params."""
    return _swin("swin_tiny_patch4_window7_224", 96, (2, 2, 6, 2), (3, 6, 12, 24))


@register_model
def swin_small_patch4_window7_224() -> ArchSpec:
    """Swin-S: Swin-T's widths, 2-2-18-2 blocks; 8.7 GMACs."""
    return _swin("swin_small_patch4_window7_224", 96, (2, 2, 18, 2), (3, 6, 12, 24))


@register_model
def swin_base_patch4_window7_224() -> ArchSpec:
    """Swin-B: 128-256-512-1024 wide, 2-2-18-2 blocks; 15.4 GMACs."""
    return _swin("swin_base_patch4_window7_224", 128, (2, 2, 18, 2), (4, 8, 16, 32))


@register_model
def swin_fmnist_tiny() -> ArchSpec:
    """Fashion-MNIST Swin preset: 32 px (28 padded), patch 4, window 4: an 8x8 grid of 32-wide tokens in
    shifted 4x4 windows, then 4x4 x 64 and 2x2 x 128 (one window each); 2-2-2 blocks of 16-dim heads, MLP 2x."""
    return ArchSpec.swin(
        "swin_fmnist_tiny",
        img_size=32,
        patch_size=4,
        window_size=4,
        embed_dim=32,
        depths=(2, 2, 2),
        num_heads=(2, 4, 8),
        mlp_ratio=2.0,
        in_chans=1,
        num_classes=10,
        mean=FMNIST_MEAN,
        std=FMNIST_STD,
    )


@register_model
def test_swin() -> ArchSpec:
    """Tiny Swin for tests: 16 px grey, patch 2, window 4; 16-32 wide, 2-2 blocks; shifted windows in stage 0."""
    return ArchSpec.swin(
        "test_swin",
        img_size=16,
        patch_size=2,
        window_size=4,
        embed_dim=16,
        depths=(2, 2),
        num_heads=(2, 2),
        mlp_ratio=2.0,
        in_chans=1,
        num_classes=10,
        mean=FMNIST_MEAN,
        std=FMNIST_STD,
    )


@register_model
def test_swin_rgb() -> ArchSpec:
    """Tiny RGB Swin for tests: 32 px, patch 2, window 4; 24-48-96 wide, 2-2-1 blocks of 3-3-6 heads."""
    return ArchSpec.swin(
        "test_swin_rgb",
        img_size=32,
        patch_size=2,
        window_size=4,
        embed_dim=24,
        depths=(2, 2, 1),
        num_heads=(3, 3, 6),
        mlp_ratio=2.0,
        num_classes=10,
    )
