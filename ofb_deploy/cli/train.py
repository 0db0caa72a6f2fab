"""``ofb-deploy train``: dense training of a registered model into a run's dense folder (torchrun-ready)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli._app import DataOpt, DataRootOpt, RunArg, SkipBadOpt, TrainSizeOpt, app, console, data_for
from ofb_deploy.train.config import TrainConfig

T = TrainConfig.default


@app.command("train")
def train_cli(
    run_dir: RunArg,
    model: Annotated[str, typer.Option(help="Registry name (`ofb-deploy models`) or local-dir:PATH.")],
    data: DataOpt = None,
    data_root: DataRootOpt = None,
    skip_bad_images: SkipBadOpt = False,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = T("epochs"),
    batch_size: Annotated[int, typer.Option(help="Images per step on each process.")] = T("batch_size"),
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = T("lr"),
    seed: Annotated[int, typer.Option(help="Seed of weights and shuffling.")] = T("seed"),
    workers: Annotated[int, typer.Option(help="DataLoader workers (0: main process).")] = T("workers"),
    augment: Annotated[bool, typer.Option(help="Augment training images (for long runs).")] = T("augment"),
    checkpoint: Annotated[Path | None, typer.Option(help="Initial weights (.safetensors or .pth).")] = None,
    pretrained: Annotated[bool, typer.Option(help="Start from timm's pretrained weights (network).")] = False,
    train_size: TrainSizeOpt = None,
    num_classes: Annotated[int | None, typer.Option(help="Classifier outputs (default: the data's).")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input size (default: the model's).")] = None,
    in_chans: Annotated[int | None, typer.Option(help="Input channels (default: the data's).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run's training resume state.")] = False,
) -> None:
    """Train a model densely into RUN's dense folder (AdamW, warm-up + cosine, label smoothing); torchrun: DDP."""
    run = RunDir.for_output(run_dir)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, workers=workers, augment=augment)
    cfg = data_for(run, data, data_root, skip_bad_images, train_size)
    from ofb_deploy.train import train_run  # NOTE: torch loads here, once the inputs are checked
    from ofb_deploy.utils import dist

    options = {"checkpoint": checkpoint, "pretrained": pretrained, "num_classes": num_classes, "img_size": img_size,
               "in_chans": in_chans}  # fmt: skip
    metrics, main = dist.run_then_cleanup(lambda: train_run(run, model, config, data=cfg, resume=resume, **options))
    if main:
        console.print(
            f"[bold green]trained[/] {model}: top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%  "
            f"({metrics['time_s']:.0f} s) -> {run.dense_dir}"
        )
