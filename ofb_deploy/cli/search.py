"""``ofb-deploy search``: OFB search of a dense model under a FLOPs target into a run's search folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ofb_deploy.artifacts import RunDir, model_stem
from ofb_deploy.choices import BuildBackend, ChooseBy, ScoreInit
from ofb_deploy.cli._app import DataOpt, DataRootOpt, RunArg, SkipBadOpt, app, console, data_for
from ofb_deploy.models.checkpoint import checkpoint_model
from ofb_deploy.search.config import SearchConfig

S = SearchConfig.default
_HELP_CKPT = "Dense model folder, or a .safetensors/.pth file with --model (default: the run's dense model)."
_HELP_TARGET = "FLOPs target: a fraction of the dense model (0.5) or MACs (1.2G, 800M)."
_BackendOpt = Annotated[BuildBackend, typer.Option(help="Backend to profile without a table.")]


@app.command("search")
def search_cli(
    run_dir: RunArg,
    checkpoint: Annotated[Path | None, typer.Option(help=_HELP_CKPT)] = None,
    model: Annotated[str | None, typer.Option(help="Registry name of a weights file's model.")] = None,
    data: DataOpt = None,
    data_root: DataRootOpt = None,
    skip_bad_images: SkipBadOpt = False,
    target_flops: Annotated[
        str | None, typer.Option(help=_HELP_TARGET + f" Default {S('target_flops')}; none with --target-latency.")
    ] = None,
    target_latency: Annotated[
        str | None, typer.Option(help="Latency budget such as 1.5ms, or 0.6x of the dense latency (predicted).")
    ] = None,
    latency_table: Annotated[Path | None, typer.Option(help="Table from `ofb-deploy profile`.")] = None,
    latency_backend: _BackendOpt = S("latency_backend"),
    latency_batch: Annotated[int, typer.Option(help="Batch to profile without a table.")] = S("latency_batch"),
    latency_threads: Annotated[int | None, typer.Option(help="CPU threads to profile at without a table.")] = S(
        "latency_threads"
    ),
    epochs: Annotated[int, typer.Option(help="Search epochs.")] = S("epochs"),
    batch_size: Annotated[int, typer.Option(help="Images per step on each process.")] = S("batch_size"),
    train_size: Annotated[str | None, typer.Option(help="Cap on training images searched on: a count, or 'all'.")] = S(
        "train_size"
    ),
    prune_every: Annotated[int, typer.Option(help="Steps between pruning rounds.")] = S("prune_every"),
    alpha_lr: Annotated[
        float | None, typer.Option(help="Peak lr of the architecture logits (default: alpha_move / prune_every).")
    ] = S("alpha_lr"),
    w_flops: Annotated[float, typer.Option(help="Weight of the FLOPs loss.")] = S("w_flops"),
    score_init: Annotated[ScoreInit, typer.Option(help="Importance score init.")] = S("score_init"),
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="Distil from the dense model.")] = S(
        "distill"
    ),
    align: Annotated[int, typer.Option(help="Candidate widths are multiples of this.")] = S("align"),
    finalize_at: Annotated[
        float, typer.Option(help="Share of the search after which the widths are chosen (0: before the first step).")
    ] = S("finalize_at"),
    choose_by: Annotated[ChooseBy, typer.Option(help="How the widths are chosen: measured loss, or log p.")] = S(
        "choose_by"
    ),
    trials: Annotated[int, typer.Option(help="Measured candidates trained side by side (1: none).")] = S("trials"),
    select_images: Annotated[int, typer.Option(help="Training images held out to measure candidates.")] = S(
        "select_images"
    ),
    seed: Annotated[int, typer.Option(help="Seed of data order, masks and scores.")] = S("seed"),
    workers: Annotated[int, typer.Option(help="DataLoader workers (0: main process).")] = S("workers"),
    resume: Annotated[bool, typer.Option(help="Continue from the search's resume state.")] = False,
) -> None:
    """Search a subnet: widths chosen by measured loss, then one pass training it (or OFB's bi-mask search first,
    with --finalize-at above 0); torchrun for DDP."""
    run = RunDir.for_output(run_dir)
    target_flops = SearchConfig.targets(target_flops, target_latency, S("target_flops"))
    config = SearchConfig(target_flops=target_flops, target_latency=target_latency,
                          latency_table=None if latency_table is None else str(latency_table),
                          latency_backend=latency_backend, latency_batch=latency_batch,
                          latency_threads=latency_threads, epochs=epochs,
                          batch_size=batch_size, train_size=train_size,
                          prune_every=prune_every, alpha_lr=alpha_lr, w_flops=w_flops, score_init=score_init,
                          distill=distill, align=align, finalize_at=finalize_at, choose_by=choose_by,
                          trials=trials, select_images=select_images, seed=seed, workers=workers)  # fmt: skip
    cfg = data_for(run, data, data_root, skip_bad_images)
    dense = checkpoint if checkpoint is not None else run.dense_dir
    if model_stem(dense) is not None:
        checkpoint_model(dense, model)  # a --model naming another model fails before torch loads
    from ofb_deploy.search import run_search  # NOTE: torch loads here, once the inputs are checked
    from ofb_deploy.utils import dist

    res, main = dist.run_then_cleanup(
        lambda: run_search(run, config, dense_checkpoint=checkpoint, model_name=model, data=cfg, resume=resume)
    )
    if main and "stopped_after_epoch" in res:
        console.print(f"search stopped after epoch {res['stopped_after_epoch']}; continue with --resume")
    elif main:
        opened = f", {len(res['unconverged'])} module(s) chosen jointly" if res["unconverged"] else ""
        target = f" (target {res['target_flops'] / 1e6:.2f})" if res["target_flops"] else ""
        lat = res.get("latency")
        latency = f", {lat['predicted_ms']:.3f} ms predicted (target {lat['target_ms']:.3f})" if lat else ""
        console.print(
            f"[bold green]searched[/] {res['base_model']}: "
            f"{res['flops'] / 1e6:.2f}/{res['dense_flops'] / 1e6:.2f} MMACs{target}{latency}, "
            f"{res['params'] / 1e3:.1f}k params, top-1 {res['top1']:.2f}% "
            f"(soft {res['top1_soft']:.2f}%){opened}, {res['search_seconds']:.0f} s -> {run.search_dir}"
        )
