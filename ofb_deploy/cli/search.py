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
    target_flops: Annotated[str, typer.Option(help=_HELP_TARGET)] = "0.5",
    epochs: Annotated[int, typer.Option(help="search epochs")] = 6,
    batch_size: Annotated[int, typer.Option(help="images per step on each process")] = 128,
    train_size: Annotated[int, typer.Option(help="training images searched on (seeded subset; 0: all)")] = 10000,
    alpha_lr: Annotated[float, typer.Option(help="learning rate of the architecture logits")] = 5e-2,
    align: Annotated[int, typer.Option(help="candidate widths are multiples of this")] = 8,
    seed: Annotated[int, typer.Option(help="seed of data order, masks and scores")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader workers (0: main process)")] = 0,
    resume: Annotated[bool, typer.Option(help="continue from RUN/search/search_state.pt")] = False,
) -> None:
    """Search a subnet with OFB (bi-mask, one-hot + FLOPs loss, PMIM, progressive pruning); torchrun for DDP."""
    from ofb_deploy.data import DataConfig
    from ofb_deploy.pipeline import RunDir
    from ofb_deploy.search import SearchConfig, run_search
    from ofb_deploy.utils import dist

    config = SearchConfig(target_flops=target_flops, epochs=epochs, batch_size=batch_size, alpha_lr=alpha_lr,
                          align=align, seed=seed, workers=workers, train_size=train_size or None)  # fmt: skip
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
        state = "converged" if res["converged"] else f"NOT converged: {', '.join(res['unconverged'])} (arg-max taken)"
        console.print(
            f"[bold green]searched[/] {res['base_model']}: "
            f"{res['flops'] / 1e6:.2f}/{res['dense_flops'] / 1e6:.2f} MMACs "
            f"(target {res['target_flops'] / 1e6:.2f}), {res['params'] / 1e3:.1f}k params, top-1 {res['top1']:.2f}% "
            f"(soft {res['top1_soft']:.2f}%), {state}, {res['search_seconds']:.0f} s -> {out}/search"
        )
