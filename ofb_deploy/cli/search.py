"""``ofb-deploy search``: OFB search of a dense model under a FLOPs target into ``RUN/search/``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ofb_deploy.cli._app import app, console

_HELP_CKPT = "dense model: a folder from 'ofb-deploy train' or a .safetensors/.pth file (default: RUN/dense)"
_HELP_TARGET = "FLOPs target: a fraction of the dense model (0.5) or MACs (1.2G, 800M)"


@app.command("search")
def search_cli(
    out: Annotated[Path, typer.Option(help="run directory; results go to RUN/search/")],
    model: Annotated[str | None, typer.Option(help="registry name (needed for a bare weights file)")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help=_HELP_CKPT)] = None,
    data: Annotated[str, typer.Option(help="'fmnist' or an ImageFolder folder with train/ and val/")] = "fmnist",
    data_root: Annotated[str | None, typer.Option(help="folder of the Fashion-MNIST .gz files")] = None,
    target_flops: Annotated[str | None, typer.Option(help=_HELP_TARGET)] = None,
    epochs: Annotated[int | None, typer.Option(help="search epochs (default 1)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="images per step on each process (default 128)")] = None,
    train_size: Annotated[int | None, typer.Option(help="cap on training images searched on (default: all)")] = None,
    prune_every: Annotated[int | None, typer.Option(help="steps between pruning rounds (default 20)")] = None,
    alpha_lr: Annotated[
        float | None, typer.Option(help="peak lr of the architecture logits (default: 0.4 / prune_every)")
    ] = None,  # fmt: skip
    w_flops: Annotated[float | None, typer.Option(help="weight of the FLOPs loss (default 5)")] = None,
    score_init: Annotated[str | None, typer.Option(help="importance score init: random or magnitude")] = None,
    distill: Annotated[bool | None, typer.Option("--distill/--no-distill", help="distil from the dense model")] = None,
    align: Annotated[int | None, typer.Option(help="candidate widths are multiples of this (default 8)")] = None,
    seed: Annotated[int, typer.Option(help="seed of data order, masks and scores")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader workers (0: main process)")] = 0,
    resume: Annotated[bool, typer.Option(help="continue from the search's resume state")] = False,
) -> None:
    """Search a subnet with OFB (bi-mask, one-hot + FLOPs loss, PMIM, progressive pruning); torchrun for DDP."""
    from ofb_deploy.artifacts import RunDir
    from ofb_deploy.data import DataConfig
    from ofb_deploy.search import SearchConfig, run_search
    from ofb_deploy.utils import dist

    given = {"target_flops": target_flops, "epochs": epochs, "batch_size": batch_size, "train_size": train_size,
             "prune_every": prune_every, "alpha_lr": alpha_lr, "w_flops": w_flops, "score_init": score_init,
             "distill": distill, "align": align}  # fmt: skip
    config = SearchConfig(seed=seed, workers=workers, **{k: v for k, v in given.items() if v is not None})
    data_cfg = DataConfig(name=data, root=data_root, seed=seed)
    try:
        res = run_search(RunDir(out, create=True), config, dense_checkpoint=checkpoint, model_name=model,
                         data=data_cfg, resume=resume)  # fmt: skip
        main = dist.is_main()  # asked before cleanup: afterwards every rank looks like rank 0
    finally:
        dist.cleanup()
    if main and "stopped_after_epoch" in res:
        console.print(f"search stopped after epoch {res['stopped_after_epoch']}; continue with --resume")
    elif main:
        opened = f", {len(res['unconverged'])} module(s) chosen at the end" if res["unconverged"] else ""
        console.print(
            f"[bold green]searched[/] {res['base_model']}: "
            f"{res['flops'] / 1e6:.2f}/{res['dense_flops'] / 1e6:.2f} MMACs "
            f"(target {res['target_flops'] / 1e6:.2f}), {res['params'] / 1e3:.1f}k params, top-1 {res['top1']:.2f}% "
            f"(soft {res['top1_soft']:.2f}%){opened}, {res['search_seconds']:.0f} s -> {out}/search"
        )
