"""Fitting any image tensor to any model input: channels (1 <-> 3), size (pad or resize), mean/std.

The model's ``ArchSpec`` is its data config (timm's ``resolve_model_data_config`` idea): ``img_size``,
``in_chans``, ``mean`` and ``std``. A 28 px Fashion-MNIST digit goes into a 32 px model by zero padding (the
background is black, so padding adds no artefact and keeps the pixel grid), and into a 224 px DeiT by bilinear
resize with its one channel repeated. The ops work on a batch ``(B, C, H, W)`` of floats in [0, 1], so an
in-memory data set transforms a whole batch at once instead of one image at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ofb_deploy.choices import FitMode
from ofb_deploy.errors import ConfigError
from ofb_deploy.models.arch_spec import ArchSpec

FIT_MODES = FitMode.values()
SHIFT_PX = 2  # augmentation: random translation of up to this many pixels (the padded-crop of CIFAR/MNIST work)


def choose_fit(native: int, target: int, fit: str = "auto") -> str:
    """``pad`` when the target is at most a quarter larger than the native size, else ``resize``.

    Args:
        native: the data set's image size.
        target: the model's input size.
        fit: ``auto``, ``pad`` or ``resize``.
    """
    if fit not in FIT_MODES:
        raise ConfigError(f"unknown fit mode {fit!r}; modes: {', '.join(FIT_MODES)}")
    if fit != "auto":
        if fit == "pad" and target < native:
            raise ConfigError(f"cannot pad {native} px images to a smaller {target} px model input")
        return fit
    return "pad" if native <= target <= native * 5 // 4 else "resize"


def fit_channels(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Repeat a grey channel to ``in_chans`` or average colour channels to grey."""
    c = x.shape[1]
    if c == in_chans:
        return x
    if c == 1:
        return x.expand(-1, in_chans, -1, -1)
    if in_chans == 1:
        return x.mean(dim=1, keepdim=True)
    raise ConfigError(f"cannot adapt {c}-channel images to a {in_chans}-channel model")


def fit_size(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Pad (centred, zeros) or resize (bilinear, antialiased when shrinking) a square batch to ``size``."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if mode == "pad" and h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(x, (left, size - w - left, top, size - h - top))
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=size < h, align_corners=False)


def random_shift_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Light augmentation for small grey images: random shift of up to ``SHIFT_PX`` and horizontal flip."""
    b, _, h, w = x.shape
    padded = F.pad(x, (SHIFT_PX,) * 4)
    offsets = torch.randint(0, 2 * SHIFT_PX + 1, (b, 2), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(b):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, dy : dy + h, dx : dx + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def normalize(x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """Subtract the model's mean and divide by its std, per channel."""
    mean = torch.tensor(spec.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def adapt_batch(
    images: torch.Tensor,
    spec: ArchSpec,
    *,
    fit: str = "auto",
    augment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 images ``(B, H, W)`` or ``(B, C, H, W)`` to the normalised float input ``spec`` expects.

    Args:
        images: the batch, values 0..255.
        spec: the model's arch spec (input size, channels, mean, std).
        fit: ``auto``, ``pad`` or ``resize`` (see ``choose_fit``).
        augment: apply ``random_shift_flip`` (training only).
        generator: random source for the augmentation.
    """
    x = images.unsqueeze(1) if images.ndim == 3 else images
    x = x.float().div_(255.0)
    if augment:
        x = random_shift_flip(x, generator)
    x = fit_size(x, spec.img_size, choose_fit(x.shape[-1], spec.img_size, fit))
    x = fit_channels(x, spec.in_chans)
    return normalize(x, spec).contiguous()
