"""``ofb-deploy`` command line: thin commands over library functions; ``main()`` maps errors to exits.

Each stage's command lives in its own module here and registers itself on ``app`` when imported.
Only ``main()`` turns an ``OfbError`` into one line on stderr and a non-zero exit (``OFB_DEBUG=1`` re-raises
for the traceback).
"""

from __future__ import annotations

import os
import sys

from rich.markup import escape

from ofb_deploy.cli._app import app, err_console, setup_logging
from ofb_deploy.errors import OfbError

# NOTE: importing a command module registers its command on `app`; keep one import per stage.
from ofb_deploy.cli import info as _info  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import train as _train  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import slice as _slice  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import finetune as _finetune  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import export as _export  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import build as _build  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import bench as _bench  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import validate as _validate  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import report as _report  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import run as _run  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import search as _search  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import compare as _compare  # noqa: E402,F401  isort: skip


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, when called as the console script, exit with) its status code.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.
    """
    setup_logging(verbose=bool(os.environ.get("OFB_DEBUG")))
    try:
        # standalone mode: Typer/Click print usage errors themselves and exit with 2
        app(args=argv, prog_name="ofb-deploy")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except OfbError as exc:
        if os.environ.get("OFB_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = exc.exit_code
    if argv is None:
        sys.exit(code)
    return code
