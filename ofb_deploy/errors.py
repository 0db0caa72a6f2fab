"""Typed errors of ofb-deploy.

Library code raises these; only ``ofb_deploy.cli.main`` turns them into one line and a non-zero exit
(``OFB_DEBUG=1`` shows the traceback). Each subclass carries the exit code the CLI uses.
"""

from __future__ import annotations


class OfbError(Exception):
    """Base of every error ofb-deploy raises on purpose."""

    exit_code: int = 1


class ConfigError(OfbError):
    """A bad argument, config file or JSON document (unknown key, wrong type, impossible value)."""

    exit_code = 2


class ModelError(OfbError):
    """An unknown model name, or a checkpoint that does not fit the model."""

    exit_code = 2


class DataError(OfbError):
    """A data set that cannot be found or read."""

    exit_code = 3


class ArtifactError(OfbError):
    """A missing, corrupt or stale artifact in a run directory (or an unwritable output)."""

    exit_code = 4


class BackendUnavailableError(OfbError):
    """An inference backend whose library or device is not on this machine."""

    exit_code = 5


class ParityError(OfbError):
    """An exported or built model whose outputs differ from the reference beyond tolerance."""

    exit_code = 6
