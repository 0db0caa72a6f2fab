"""``ofb-deploy finetune``: train the sliced subnet with distillation from the dense model (torchrun-ready)."""

from __future__ import annotations

from typing import Annotated

import typer

from ofb_deploy.artifacts import RunDir
from ofb_deploy.cli._app import DataOpt, DataRootOpt, RunArg, SkipBadOpt, TrainSizeOpt, app, console, data_for
from ofb_deploy.finetune.config import FinetuneConfig

F = FinetuneConfig.default


@app.command("finetune")
def finetune_cli(
    run_dir: RunArg,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = F("epochs"),
    batch_size: Annotated[int, typer.Option(help="Images per step on each process.")] = F("batch_size"),
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = F("lr"),
    teacher: Annotated[
        str | None, typer.Option(help="Dense model folder to distil from, or 'none' (default: the run's).")
    ] = F("teacher"),
    alpha: Annotated[float, typer.Option(help="Weight of the teacher's soft targets (rest: labels).")] = F("alpha"),
    temperature: Annotated[float, typer.Option(help="Distillation softmax temperature.")] = F("temperature"),
    data: DataOpt = None,
    data_root: DataRootOpt = None,
    skip_bad_images: SkipBadOpt = False,
    train_size: TrainSizeOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of shuffling and augmentation.")] = F("seed"),
    resume: Annotated[bool, typer.Option(help="Continue from the fine-tune's resume state.")] = False,
) -> None:
    """Fine-tune RUN's sliced subnet with knowledge distillation (soft targets + CE) into its finetune folder."""
    run = RunDir(run_dir)
    ft = FinetuneConfig(epochs=epochs, batch_size=batch_size, lr=lr, teacher=teacher, alpha=alpha,
                        temperature=temperature, seed=seed)  # fmt: skip
    cfg = data_for(run, data, data_root, skip_bad_images, train_size)
    from ofb_deploy.finetune import finetune_run  # NOTE: torch loads here, once the inputs are checked
    from ofb_deploy.utils import dist

    m, main = dist.run_then_cleanup(
        lambda: finetune_run(
            run, ft.train_config(), teacher=ft.teacher, resume=resume, data=cfg, distill=ft.distill_config()
        )  # fmt: skip
    )
    if main:
        before = f"sliced {m['sliced_top1']:.2f}% -> " if m.get("sliced_top1") is not None else ""
        done = f"top-1 {before}{m['top1']:.2f}% ({m['time_s']:.0f} s) -> {run.finetune_dir}"
        console.print(f"[bold green]fine-tuned[/] {done}")
