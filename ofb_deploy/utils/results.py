"""Result files as typed models (pydantic v2): the base of every result JSON a stage writes into a run.

A stage builds its result model and writes it (``write``: atomically, as every run file); a reader ``read``s it
back and uses attributes, never string keys. A missing, malformed or old file is one ``ArtifactError`` line
naming the file and the first bad key. Every field carries a description, which
``python -m ofb_deploy.report.schema`` renders into docs/report_schema.md, so the document cannot drift from the
code.

Readers ignore keys they do not know (the schema's stability rule: fields are added without a version bump).
A field listed in ``OMIT_NONE`` is left out of the JSON while it is ``None`` ("present only when ..."), as the
files had it before they were models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer
from typing_extensions import Self

from ofb_deploy.errors import ArtifactError, OfbError
from ofb_deploy.utils.config import describe
from ofb_deploy.utils.io import atomic_write_json, read_json


class ResultModel(BaseModel):
    """Base of every result document and of its parts."""

    # NOTE: "constants": a non-finite number (an infinite throughput) stays Infinity, as json.dumps writes it
    model_config = ConfigDict(extra="ignore", validate_assignment=True, ser_json_inf_nan="constants")
    OMIT_NONE: ClassVar[tuple[str, ...]] = ()  # fields left out of the JSON while they are None

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        for name in self.OMIT_NONE:
            if name in out and out[name] is None:
                del out[name]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (plain dicts, lists, numbers and strings)."""
        return self.model_dump(mode="json")

    def write(self, path: str | Path) -> Path:
        """Write the document as indented JSON, atomically.

        Args:
            path: the file (``RunDir`` names it).
        """
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def parse(cls, data: Any, source: str) -> Self:
        """``data`` (a parsed JSON document) as this model, or a one-line ``ArtifactError``.

        Args:
            data: the parsed document.
            source: how the error names it (the file).
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ArtifactError(describe(exc, cls, f"{source}:")) from None
        except OfbError as exc:  # a nested ArchSpec names its own bad key
            raise ArtifactError(f"{source}: {exc}") from None

    @classmethod
    def read(cls, path: str | Path, what: str) -> Self:
        """Read and validate a result file; missing, malformed or of another schema: one ``ArtifactError``.

        Args:
            path: the file.
            what: how a missing-file error names it (``validation results``).
        """
        try:
            data = read_json(path, what)
        except OfbError as exc:  # NOTE: a malformed result file is a broken artifact, not a bad config
            raise ArtifactError(str(exc)) from None
        return cls.parse(data, f"{what} {path}")
