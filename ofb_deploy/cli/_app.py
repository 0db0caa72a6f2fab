"""The Typer ``app`` every CLI module registers its command on, the consoles, and the options commands share.

Options whose values come from a config model show that model's default (``TrainConfig.default("epochs")``), so
the CLI, the YAML presets and the Python API agree. Every stage takes its run directory as the positional
argument; ``--data``/``--data-root``/``--skip-bad-images`` choose the data the same way on every command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from ofb_deploy.data import DataConfig, dataset_info, run_data

if TYPE_CHECKING:
    from ofb_deploy.artifacts import RunDir

app = typer.Typer(
    name="ofb-deploy",
    help="Compress a ViT with the OFB search, slice it, export to ONNX, build engines and validate them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()  # summaries go to stdout; progress and logs to stderr
err_console = Console(stderr=True)

ALL_HELP = "a count, or 'all'"
RunArg = Annotated[Path, typer.Argument(help="Run directory.", show_default=False)]
DataOpt = Annotated[
    str | None,
    typer.Option(help="'fmnist' or an ImageFolder folder with train/ and val/ (default: the run's; fmnist first)"),
]
DataRootOpt = Annotated[str | None, typer.Option(help="Folder of the Fashion-MNIST .gz files (default: Debian's).")]
SkipBadOpt = Annotated[
    bool,
    typer.Option("--skip-bad-images", help="Leave out (and count) unreadable ImageFolder images, not fail."),
]
TrainSizeOpt = Annotated[str | None, typer.Option(help=f"Cap on training images: {ALL_HELP} (default: the run's).")]


def setup_logging(verbose: bool = False) -> None:
    """Route logging through rich on stderr: ofb-deploy's own at INFO, third-party libraries at WARNING.

    NOTE: the ONNX exporter (onnxscript/onnx_ir) logs every rewrite at INFO; users want only ours.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    logging.getLogger("ofb_deploy").setLevel(logging.DEBUG if verbose else logging.INFO)


def data_for(
    run: RunDir,
    data: str | None,
    data_root: str | None,
    skip_bad_images: bool = False,
    train_size: str | None = None,
) -> DataConfig:
    """The data a stage command uses: the run's (``data.run_data``), with what the options name changed; checked
    (``data.dataset_info``: files present, ImageFolder images readable) before the stage imports torch.

    Args:
        run: the run.
        data: ``--data`` (a name names the run's data set; another one than the run's is an error).
        data_root: ``--data-root``.
        skip_bad_images: ``--skip-bad-images``.
        train_size: ``--train-size`` (this stage's cap).
    """
    named = {"name": data, "root": data_root}
    given = {k: v for k, v in named.items() if v is not None}
    if data_root is not None and data is None:
        given["name"] = "fmnist"  # a Fashion-MNIST folder
    cfg = run_data(run, DataConfig(**given) if given else None)
    changes = {"train_size": train_size} if train_size is not None else {}
    if skip_bad_images:
        changes["skip_bad_images"] = True
    cfg = cfg.replace(**changes) if changes else cfg
    dataset_info(cfg)
    return cfg


@app.callback()
def _root() -> None:
    """Compress a ViT with the OFB search, slice it, export to ONNX, build engines and validate them."""
