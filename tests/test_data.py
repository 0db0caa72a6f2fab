"""Data: the Fashion-MNIST reader on the real files, fitting to model inputs, seeded splits, loaders, readers."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from ofb_deploy.data import DataConfig, build_loader, build_splits, dataset_info, make_reader, set_epoch
from ofb_deploy.data.fmnist import load_fmnist, read_idx
from ofb_deploy.data.transforms import adapt_batch, choose_fit
from ofb_deploy.errors import ConfigError, DataError
from ofb_deploy.models import get_arch_spec


@pytest.mark.parametrize(("split", "count"), [("train", 60000), ("test", 10000)])
def test_fmnist_reader_on_real_files(fmnist_root, split: str, count: int) -> None:
    images, labels = load_fmnist(split, fmnist_root)
    assert images.shape == (count, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (count,) and labels.dtype == torch.int64
    assert labels.min() == 0 and labels.max() == 9
    assert torch.bincount(labels).tolist() == [count // 10] * 10  # Fashion-MNIST is balanced
    assert images.max() == 255 and images.float().mean() > 50


def test_read_idx_rejects_bad_files(tmp_path) -> None:
    (tmp_path / "junk.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04hello"))
    truncated = gzip.compress(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0")
    (tmp_path / "short.gz").write_bytes(truncated)
    with pytest.raises(DataError, match="not an idx"):
        read_idx(tmp_path / "junk.gz")
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short.gz")


def test_missing_root_names_install_command(tmp_path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        dataset_info(DataConfig(root=str(tmp_path / "absent")))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        dataset_info(DataConfig(root=str(tmp_path)))  # exists but holds no files


def test_fit_choice() -> None:
    assert choose_fit(28, 32) == "pad"
    assert choose_fit(28, 16) == "resize"
    assert choose_fit(28, 224) == "resize"
    assert choose_fit(28, 224, "pad") == "pad"
    with pytest.raises(ConfigError):
        choose_fit(28, 16, "pad")


def test_adapt_pads_grey_and_resizes_to_rgb() -> None:
    images = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    tiny = get_arch_spec("vit_fmnist_tiny")
    x = adapt_batch(images, tiny)
    assert x.shape == (2, 1, 32, 32)
    background = (0 - tiny.mean[0]) / tiny.std[0]
    assert torch.allclose(x[:, :, :2], torch.tensor(background))  # padded border is normalised black
    assert torch.allclose(x[:, :, 2:30, 2:30], torch.tensor((1 - tiny.mean[0]) / tiny.std[0]))
    deit = get_arch_spec("deit_tiny_patch16_224", num_classes=10)
    y = adapt_batch(images, deit)
    assert y.shape == (2, 3, 224, 224)
    for c in range(3):  # each channel normalised with its own mean/std
        assert torch.allclose(y[:, c], torch.tensor((1 - deit.mean[c]) / deit.std[c]), atol=1e-5)


def test_fmnist_splits_are_seeded_and_fitted(fmnist_root) -> None:
    spec = get_arch_spec("vit_fmnist_tiny")
    cfg = DataConfig(root=str(fmnist_root), train_size=500, val_size=300, calib_size=64, seed=3)
    a, b = build_splits(cfg, spec), build_splits(cfg, spec)
    other = build_splits(DataConfig(root=str(fmnist_root), train_size=500, calib_size=64, seed=4), spec)
    assert (len(a.train), len(a.val), len(a.calib), a.num_classes) == (500, 300, 64, 10)
    assert len(other.val) == 10000  # uncapped validation = the whole test set
    assert a.calib.indices == b.calib.indices and a.train.indices == b.train.indices
    assert a.calib.indices != other.calib.indices
    x, y = a.calib[0]
    assert x.shape == (1, 32, 32) and 0 <= y < 10
    assert torch.equal(a.calib[5][0], b.calib[5][0])  # calibration images are not augmented


def test_loaders_shuffle_by_epoch_and_cover_eval(fmnist_root) -> None:
    spec = get_arch_spec("test_vit")
    splits = build_splits(DataConfig(root=str(fmnist_root), train_size=100, val_size=70), spec)
    train = build_loader(splits.train, 32, train=True, workers=0, seed=1)
    assert len(train) == 3  # drop_last
    set_epoch(train, 0)
    first = torch.cat([y for _, y in train])
    set_epoch(train, 0)
    again = torch.cat([y for _, y in train])
    set_epoch(train, 1)
    later = torch.cat([y for _, y in train])
    assert torch.equal(first, again) and not torch.equal(first, later)
    val = build_loader(splits.val, 32, train=False, workers=0)
    labels = torch.cat([y for _, y in val])
    assert labels.tolist() == [splits.val[i][1] for i in range(70)]


def test_make_reader_batches_labelled_numpy(fmnist_root) -> None:
    spec = get_arch_spec("test_vit_rgb")
    splits = build_splits(DataConfig(root=str(fmnist_root), calib_size=50), spec)
    reader = make_reader(splits.calib, batch_size=16, limit=40)
    assert reader.images.shape == (40, 3, 32, 32) and reader.images.dtype == np.float32
    assert len(reader) == 3 and [f["input"].shape[0] for f in reader] == [16, 16, 8]
    feeds = list(reader.iter_labeled())
    assert feeds[0][1].tolist() == [splits.calib[i][1] for i in range(16)]


def _image_folder(root, classes=("cat", "dog"), per_class=3) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("train", "val"):
        for cls in classes:
            (root / sub / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / sub / cls / f"{i}.png")


def test_image_folder_splits(tmp_path) -> None:
    _image_folder(tmp_path)
    info = dataset_info(str(tmp_path))
    assert (info.num_classes, info.in_chans, info.classes) == (2, 3, ("cat", "dog"))
    for name, shape in [("test_vit_rgb", (3, 32, 32)), ("test_vit", (1, 16, 16))]:
        splits = build_splits(DataConfig(name=str(tmp_path), calib_size=4), get_arch_spec(name))
        assert (len(splits.train), len(splits.val), len(splits.calib)) == (6, 6, 4)
        x, y = splits.val[0]
        assert x.shape == shape and y == 0
    (tmp_path / "val").rename(tmp_path / "valid")
    with pytest.raises(DataError, match="val/"):
        build_splits(str(tmp_path), get_arch_spec("test_vit_rgb"))


def test_data_config_round_trip_and_validation() -> None:
    cfg = DataConfig(name="fmnist", seed=2, train_size=10)
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown key"):
        DataConfig.from_dict({"nmae": "fmnist"})
    with pytest.raises(ConfigError):
        DataConfig(train_size=0)
