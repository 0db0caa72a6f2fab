"""``ofb-deploy train``: dense training of a registered model on Fashion-MNIST or an ImageFolder tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ofb_deploy.cli._app import app, console

_HELP_DATA = "'fmnist' or an ImageFolder folder with train/ and val/"


@app.command("train")
def train_cli(
    model: Annotated[str, typer.Option(help="registry name (see 'ofb-deploy info') or local-dir:PATH")],
    out: Annotated[Path, typer.Option(help="output model folder (with a resume state)")],
    data: Annotated[str, typer.Option(help=_HELP_DATA)] = "fmnist",
    data_root: Annotated[str | None, typer.Option(help="folder of the Fashion-MNIST .gz files")] = None,
    epochs: Annotated[int, typer.Option(help="passes over the training set")] = 3,
    batch_size: Annotated[int, typer.Option(help="images per step on each process")] = 64,
    lr: Annotated[float, typer.Option(help="peak learning rate (AdamW)")] = 2e-3,
    seed: Annotated[int, typer.Option(help="seed of weights, shuffling, splits")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader workers (0: main process)")] = 0,
    checkpoint: Annotated[Path | None, typer.Option(help="initial weights (.safetensors or .pth)")] = None,
    pretrained: Annotated[bool, typer.Option(help="start from timm's pretrained weights (network)")] = False,
    train_size: Annotated[int | None, typer.Option(help="cap on training images (seeded subset)")] = None,
    num_classes: Annotated[int | None, typer.Option(help="classifier outputs (default: the data's)")] = None,
    img_size: Annotated[int | None, typer.Option(help="input size (default: the model's)")] = None,
    in_chans: Annotated[int | None, typer.Option(help="input channels (default: the data's)")] = None,
    augment: Annotated[bool, typer.Option(help="augment training images (for long runs)")] = False,
    resume: Annotated[bool, typer.Option(help="continue from the resume state in OUT")] = False,
) -> None:
    """Train a model densely (AdamW, warm-up + cosine, label smoothing); torchrun runs it with DDP."""
    from ofb_deploy.data import DataConfig
    from ofb_deploy.train import TrainConfig, train
    from ofb_deploy.utils import dist
    from ofb_deploy.utils.io import check_writable

    check_writable(out)
    data_cfg = DataConfig(name=data, root=data_root, seed=seed, train_size=train_size)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, workers=workers, augment=augment)
    try:
        metrics = train(model, data_cfg, out, config, checkpoint=checkpoint, pretrained=pretrained, resume=resume,
                        num_classes=num_classes, in_chans=in_chans, img_size=img_size)  # fmt: skip
        main = dist.is_main()  # asked before cleanup: afterwards every rank looks like rank 0
    finally:
        dist.cleanup()
    if main:
        console.print(
            f"[bold green]trained[/] {model}: top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%  "
            f"({metrics['time_s']:.0f} s) -> {out}"
        )
