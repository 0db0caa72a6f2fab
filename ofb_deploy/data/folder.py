"""ImageFolder trees (``train/`` and ``val/``, the ImageNet layout): unreadable files fail with one line or are skipped.

Each image's header is opened and verified (``PIL.Image.verify``) when the tree is first scanned, before any
training step: a zero-byte, truncated-header or non-image file stops the command with one line naming the file,
or, with ``skip_bad_images``, is left out and counted in the log. A file whose pixels turn out to be undecodable
later (past a valid header) still fails with one line naming it (``_load_rgb``). Images go through timm's
``create_transform`` for the model's size and mean/std.
"""

from __future__ import annotations

import copy
import functools
import logging
from pathlib import Path
from typing import Any

from ofb_deploy.errors import DataError
from ofb_deploy.models.arch_spec import ArchSpec

log = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's


def _load_rgb(path: str) -> Any:
    from PIL import Image

    try:
        with open(path, "rb") as fh, Image.open(fh) as image:
            return image.convert("RGB")
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError ... for one cause: a bad file
        raise DataError(f"cannot decode image {path} ({type(exc).__name__}); remove it") from exc


def _bad_image(path: str) -> str | None:
    """Why ``path`` is not a readable image, or ``None`` when its header verifies."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as exc:  # as in _load_rgb
        return type(exc).__name__
    return None


@functools.lru_cache(maxsize=8)
def scan(folder: Path, skip_bad_images: bool) -> frozenset[str]:
    """The image files of one ImageFolder split whose headers verify, each checked once per process.

    NOTE: walks the tree like torchvision's ``make_dataset`` (class folders, then every file below them with an
    image extension), but without importing it: a bad file fails before torch loads.

    Args:
        folder: ``root/train`` or ``root/val``.
        skip_bad_images: leave out unreadable files (counted in the log) instead of failing on the first one.
    """
    if not folder.is_dir():
        raise DataError(f"ImageFolder split not found: {folder}")
    good, bad = [], []
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in cls.rglob("*") if p.is_file() and p.name.lower().endswith(IMG_EXTENSIONS)):
            why = _bad_image(str(path))
            if why is not None and not skip_bad_images:
                raise DataError(f"{path} is not a readable image ({why}): remove it, or pass --skip-bad-images")
            (good if why is None else bad).append(str(path))
    if not good:
        raise DataError(f"{folder} holds no readable images (in class folders)")
    if bad:
        log.warning("skipped %d unreadable image(s) in %s (--skip-bad-images), e.g. %s", len(bad), folder, bad[0])
    return frozenset(good)


def _transform(spec: ArchSpec, training: bool) -> Any:
    import timm.data
    from torchvision import transforms

    tf = timm.data.create_transform(
        input_size=(spec.in_chans, spec.img_size, spec.img_size),
        is_training=training,
        mean=spec.mean,
        std=spec.std,
        interpolation="bicubic",
        crop_pct=0.875,
    )
    # NOTE: images load as RGB; a grey model gets one channel before timm's transform.
    mode = transforms.Grayscale(1) if spec.in_chans == 1 else transforms.Lambda(lambda im: im.convert("RGB"))
    return transforms.Compose([mode, tf])


def _dataset(folder: Path, transform: Any, skip_bad_images: bool) -> Any:
    from torchvision.datasets import ImageFolder

    good = scan(folder, skip_bad_images)  # the files verified once; ImageFolder then only lists them
    try:
        return ImageFolder(str(folder), transform=transform, loader=_load_rgb, is_valid_file=good.__contains__)
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"cannot read ImageFolder {folder}: {str(exc).splitlines()[0]}") from exc


def folder_sets(root: Path, spec: ArchSpec, train_augment: bool, skip_bad_images: bool) -> tuple[Any, Any, Any]:
    """Train (augmented or not), plain train (for calibration) and val data sets of an ImageFolder tree.

    Args:
        root: the tree (``train/`` and ``val/``).
        spec: the model's arch spec (size, channels, mean/std).
        train_augment: augment the training set.
        skip_bad_images: leave out unreadable files instead of failing.
    """
    train = _dataset(root / "train", _transform(spec, train_augment), skip_bad_images)
    plain = copy.copy(train)
    plain.transform = _transform(spec, False)
    val = _dataset(root / "val", _transform(spec, False), skip_bad_images)
    if val.classes != train.classes:
        raise DataError(f"{root}: val/ classes differ from train/ classes")
    return train, plain, val
