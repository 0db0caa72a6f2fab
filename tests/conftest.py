"""Shared fixtures: the real Fashion-MNIST files and a tiny ``test_vit`` trained on them once per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ofb_deploy.errors import DataError

if os.environ.get("PYTEST_XDIST_WORKER"):
    # NOTE: `make test` runs one xdist worker per core; a worker that also took every core for torch and ONNX
    # Runtime would oversubscribe them, and OpenMP's spinning threads then slow a search step 10-100x. One thread
    # per worker (``utils.threads.cpu_threads`` reads OMP_NUM_THREADS; subprocesses such as torchrun inherit it).
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def fmnist_root() -> Path:
    """Folder of the real Fashion-MNIST ``.gz`` files (skips with the install hint when absent)."""
    from ofb_deploy.data.fmnist import find_root

    try:
        return find_root(download=False)
    except DataError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def trained_test_vit_dir(tmp_path_factory: pytest.TempPathFactory, fmnist_root: Path) -> Path:
    """A model folder (``model.json`` + ``model.safetensors``) of ``test_vit`` trained on a Fashion-MNIST subset.

    About 70% top-1 on 1000 test images (16 px, 32 wide) after ~15 s of CPU; reuse it, do not train again.
    """
    from ofb_deploy.data import DataConfig
    from ofb_deploy.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trained_test_vit")
    data = DataConfig(root=str(fmnist_root), train_size=4000, val_size=1000, calib_size=256)
    train("test_vit", data, out, TrainConfig(epochs=3, batch_size=32, lr=3e-3, warmup_epochs=0.2))
    return out


@pytest.fixture(scope="session")
def validated_run(tmp_path_factory: pytest.TempPathFactory, trained_test_vit_dir: Path) -> Any:
    """A validated ``RunDir``: trained ``test_vit`` as dense, a hand-sliced ~50% subnet, ORT CPU fp32 and int8
    engines of both, and ``validate/validate.json`` (batches 1 and 4, short timings). Tests must not modify it.
    """
    import shutil

    from ofb_deploy.artifacts import RunDir
    from ofb_deploy.build import build_run
    from ofb_deploy.export.run import export_run
    from ofb_deploy.slicing import slice_handwritten
    from ofb_deploy.utils.io import atomic_write_json
    from ofb_deploy.validate.config import ValidateConfig
    from ofb_deploy.validate.validate import validate_run

    root = tmp_path_factory.mktemp("validated_run")
    run = RunDir(root, create=True)
    shutil.copytree(trained_test_vit_dir, run.dense_dir)
    run.mark_done("train", "fixture")
    arch = root / "half.json"
    atomic_write_json(arch, {"embed_dim": 32, "blocks": [{"heads": 1, "head_dim": 16, "mlp_hidden": 32}] * 2})
    slice_handwritten(arch, run.dense_dir, run.slice_dir)
    run.mark_done("slice", "fixture")
    export_run(run, int8=True, parity_images=64)
    for precision in ("fp32", "int8"):
        build_run(run, "ort-cpu", precision, (1, 4))
    config = ValidateConfig(batches=(1, 4), val_size=256, warmup_s=0.02, min_iters=3, min_time_s=0.05, rounds=2)
    validate_run(run, config)
    return run
