"""Configs as data: the one way a config dataclass is built from a parsed JSON/YAML mapping.

Every stage's config (data, train, search, validate, pipeline) is a dataclass; ``from_mapping`` rejects
anything that is not a mapping and names any unknown key, so a typo in a config file fails with one line
before any work starts. Missing keys take the dataclass defaults; ``__post_init__`` checks the values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from ofb_deploy.errors import ConfigError

T = TypeVar("T")


def check_keys(data: Any, allowed: Iterable[str], section: str) -> dict[str, Any]:
    """Return ``data`` as a dict, or raise ``ConfigError`` for a non-mapping or an unknown key.

    Args:
        data: the parsed mapping.
        allowed: the keys the section accepts.
        section: how the error names the section (``"train config"``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(map(str, unknown))}")
    return data


def from_mapping(cls: type[T], data: Any, section: str) -> T:
    """Build the dataclass ``cls`` from ``data`` (unknown keys and wrong argument types are a ``ConfigError``).

    Args:
        cls: a dataclass type.
        data: the parsed mapping.
        section: how errors name the section.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    check_keys(data, names, section)
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{section}: {exc}") from None
