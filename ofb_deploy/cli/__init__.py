"""``ofb-deploy`` command line: thin commands over library functions; ``main()`` maps errors to exits.

Each stage's command lives in its own module here and registers itself on ``app`` when imported.
Only ``main()`` turns an ``OfbError``, or a usage error Typer found in the arguments, into one line on stderr and
a non-zero exit (``OFB_DEBUG=1`` re-raises an ``OfbError`` for the traceback).
"""

from __future__ import annotations

import os
import sys

from rich.markup import escape
from typer.exceptions import Abort, Exit, TyperException

from ofb_deploy.cli._app import app, err_console, setup_logging
from ofb_deploy.errors import OfbError

# NOTE: importing a command module registers its command on `app`; keep one import per command.
from ofb_deploy.cli import info as _info  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import models as _models  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import config as _config  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import train as _train  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import search as _search  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import slice as _slice  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import finetune as _finetune  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import export as _export  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import build as _build  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import bundle as _bundle  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import bench as _bench  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import validate as _validate  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import report as _report  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import run as _run  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import compare as _compare  # noqa: E402,F401  isort: skip
from ofb_deploy.cli import profile as _profile  # noqa: E402,F401  isort: skip


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _usage(exc: TyperException) -> int:
    """One line for an argument Typer rejected (it would draw a box of several lines)."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        return 2  # `ofb-deploy` alone: the help is already printed
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    message = " ".join(exc.format_message().split()).replace("Value error, ", "")
    _error(f"{where}{message}{hint}")
    return int(getattr(exc, "exit_code", 2))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, when called as the console script, exit with) its status code.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.
    """
    setup_logging(verbose=bool(os.environ.get("OFB_DEBUG")))
    try:
        result = app(args=argv, prog_name="ofb-deploy", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except Exit as exc:
        code = exc.exit_code
    except Abort:
        _error("aborted")
        code = 1
    except TyperException as exc:
        code = _usage(exc)
    except OfbError as exc:
        if os.environ.get("OFB_DEBUG"):
            raise
        _error(str(exc))
        code = exc.exit_code
    if argv is None:
        sys.exit(code)
    return code
