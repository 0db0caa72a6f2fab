"""``DataConfig``: which data a run uses and how much of it (a config model; ``datasets.py`` reads the data)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from ofb_deploy.choices import FitMode
from ofb_deploy.utils.config import ConfigModel, ImageCount, NonNegativeInt

FMNIST_NAMES = ("fmnist", "fashion-mnist", "fashion_mnist")


class DataConfig(ConfigModel):
    """Which data and how much of it.

    Args:
        name: ``fmnist`` or the path of an ImageFolder tree with ``train/`` and ``val/``.
        root: folder of the Fashion-MNIST ``.gz`` files (default: the Debian location).
        seed: seed of every subset drawn (caps and calibration).
        calib_size: calibration images (a subset of the training set; ``all``: every training image).
        train_size: cap on training images (``all``: every one).
        val_size: cap on validation images (``all``: every one).
        fit: how a data set's image size is fitted to the model input (``FitMode``).
        skip_bad_images: leave out (and count) ImageFolder files that are not readable images, instead of failing.
    """

    SECTION: ClassVar[str] = "data"

    name: Annotated[str, Field(min_length=1)] = "fmnist"
    root: str | None = None
    seed: NonNegativeInt = 0
    calib_size: ImageCount = 512
    train_size: ImageCount = None
    val_size: ImageCount = None
    fit: FitMode = FitMode.AUTO
    skip_bad_images: bool = False

    @property
    def is_fmnist(self) -> bool:
        """True for Fashion-MNIST, false for an ImageFolder path."""
        return self.name.lower() in FMNIST_NAMES
