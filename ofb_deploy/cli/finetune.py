"""``ofb-deploy finetune``: train the sliced subnet with distillation from the dense model (torchrun-ready)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ofb_deploy.cli._app import app, console


@app.command("finetune")
def finetune_cli(
    run_dir: Annotated[Path, typer.Argument(help="Run directory with slice/subnet.*")],
    epochs: Annotated[int, typer.Option(help="passes over the training set")] = 3,
    teacher: Annotated[str | None, typer.Option(help="dense model folder (default RUN/dense), or 'none'")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the stage's resume state")] = False,
    batch_size: Annotated[int, typer.Option(help="images per step on each process")] = 128,
    lr: Annotated[float, typer.Option(help="peak learning rate (AdamW)")] = 5e-4,
    alpha: Annotated[float, typer.Option(help="weight of the teacher's soft targets (rest: labels)")] = 0.5,
    temperature: Annotated[float, typer.Option(help="distillation softmax temperature")] = 4.0,
    data: Annotated[str | None, typer.Option(help="'fmnist' or an ImageFolder (default: the run's)")] = None,
    train_size: Annotated[int | None, typer.Option(help="cap on training images (seeded subset)")] = None,
    seed: Annotated[int, typer.Option(help="seed of shuffling and augmentation")] = 0,
) -> None:
    """Fine-tune RUN/slice with knowledge distillation (soft targets + CE) into RUN/finetune."""
    from ofb_deploy.artifacts import RunDir
    from ofb_deploy.data import run_data
    from ofb_deploy.finetune import DistillConfig, finetune_run
    from ofb_deploy.train import TrainConfig
    from ofb_deploy.utils import dist

    run = RunDir(run_dir)
    data_cfg = run_data(run, data)
    if train_size is not None:
        data_cfg = data_cfg.replace(train_size=train_size)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, warmup_epochs=0.1)
    distill = DistillConfig(alpha=alpha, temperature=temperature)
    try:
        m = finetune_run(run, config, teacher=teacher, resume=resume, data=data_cfg, distill=distill)
    finally:
        dist.cleanup()
    if dist.is_main():
        before = f"sliced {m['sliced_top1']:.2f}% -> " if m.get("sliced_top1") is not None else ""
        done = f"top-1 {before}{m['top1']:.2f}% ({m['time_s']:.0f} s) -> {run.finetune_dir}"
        console.print(f"[bold green]fine-tuned[/] {done}")
