"""``BuildConfig``: which engines the pipeline's build stage makes (how one is built: ``engines.config``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, PlainSerializer

from ofb_deploy.choices import BuildBackend, Precision
from ofb_deploy.engines.registry import list_backends
from ofb_deploy.utils.config import ConfigModel, split_list

AUTO = "auto"  # every backend this machine can build (`ofb-deploy build --list`)


def _backends(value: Any) -> Any:
    if value is None or value == AUTO:
        return AUTO
    items = split_list(value)
    allowed = BuildBackend.values()
    bad = [b for b in items if b not in allowed]
    if bad or not items:
        raise ValueError(f"allowed: {AUTO}, or a list of {', '.join(allowed)}")
    return tuple(str(b) for b in items)


Backends = Annotated[str | tuple[str, ...], BeforeValidator(_backends), PlainSerializer(lambda v: v)]
Precisions = Annotated[tuple[Precision, ...], BeforeValidator(split_list), Field(min_length=1)]


class BuildConfig(ConfigModel):
    """Settings of the build stage.

    Args:
        backends: ``auto`` (every backend this machine can build) or a list of ``BuildBackend`` values.
        precisions: precisions built for each backend (``Precision`` values).
    """

    SECTION: ClassVar[str] = "build"

    backends: Backends = AUTO
    precisions: Precisions = (Precision.FP32, Precision.INT8)

    def plan(self) -> list[tuple[str, str]]:
        """``(backend, precision)`` pairs to build; ``auto`` asks the registry what this machine can build."""
        if self.backends == AUTO:
            backends = [s.name for s in list_backends() if s.can_build and s.name != "torch"]
        else:
            backends = list(self.backends)
        return [(b, str(p)) for b in backends for p in self.precisions]
