"""Configs as typed models (pydantic v2): the one way a config is built, validated, merged and printed.

Every config (data, train, search, slice, finetune, export, build, validate, targets, the pipeline's run file)
is a ``ConfigModel``. Its fields carry the defaults that the CLI options, the YAML presets and the Python API all
read, and their types and bounds. An unknown key, a wrong type or an out-of-range value becomes one
``ConfigError`` line naming the key, the value and what is allowed, before any work starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import Self

from ofb_deploy.errors import ConfigError

ALL = "all"  # how every command and config spells "no cap: every image"
_DEPTH: ContextVar[int] = ContextVar("config_depth", default=0)  # nesting of config validation


def _no_bool(value: Any) -> Any:
    # NOTE: pydantic's lax mode reads True as 1; a boolean where a number belongs is always a typo
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


def _all_images(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() == ALL):
        return None
    return value


def split_list(value: Any) -> Any:
    """One value, a list, or a comma-separated string (``1,8,32``) as a tuple."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(value)
    return (value,)


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
PositiveInt = Annotated[int, BeforeValidator(_no_bool), Field(gt=0)]
NonNegativeInt = Annotated[int, BeforeValidator(_no_bool), Field(ge=0)]
PositiveFloat = Annotated[float, BeforeValidator(_no_bool), Field(gt=0)]
NonNegativeFloat = Annotated[float, BeforeValidator(_no_bool), Field(ge=0)]
Fraction = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, le=1)]
Smoothing = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, lt=1)]  # label smoothing
# an image count: a positive integer, or ``all`` / null for every image
ImageCount = Annotated[PositiveInt | None, BeforeValidator(_all_images)]
Batches = Annotated[tuple[PositiveInt, ...], BeforeValidator(split_list), Field(min_length=1)]


class ConfigModel(BaseModel):
    """Base of every config: unknown keys are errors, instances are immutable, choices are stored as values.

    ``SECTION`` names the config in error messages (``search``, ``train`` ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True, validate_default=True)
    SECTION: ClassVar[str] = "config"

    def __init__(self, **data: Any) -> None:
        # NOTE: library code builds configs from user input too (CLI options); it gets the same one-line error.
        # pydantic calls a custom __init__ for nested models too: only the outermost call turns the error into a
        # ConfigError, so the line names the whole path (blocks[0].heads), not the nested model's key alone.
        outer, token = _DEPTH.get() == 0, _DEPTH.set(_DEPTH.get() + 1)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if not outer:
                raise
            raise ConfigError(describe(exc, type(self), self.SECTION)) from None
        finally:
            _DEPTH.reset(token)

    @classmethod
    def from_dict(cls, data: Any, section: str | None = None) -> Self:
        """Validate and build from a parsed JSON/YAML mapping (missing keys take the defaults).

        Args:
            data: the mapping.
            section: how the one-line error names the config (default ``SECTION``).
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{section or cls.SECTION}: expected a mapping of keys, got {type(data).__name__}")
        return cls.validated(dict(data), section)

    @classmethod
    def validated(cls, data: Any, section: str | None = None) -> Self:
        """``data`` validated into this config, or a one-line ``ConfigError`` naming ``section``."""
        outer, token = _DEPTH.get() == 0, _DEPTH.set(_DEPTH.get() + 1)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            if not outer:
                raise
            raise ConfigError(describe(exc, cls, section or cls.SECTION)) from None
        finally:
            _DEPTH.reset(token)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (what a CLI option shows and passes when not given)."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples as lists, choices as strings)."""
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` (``dataclasses.replace`` for configs)."""
        return type(self).validated({**self.model_dump(), **changes})

    def merged(self, changes: Mapping[str, Any], section: str | None = None) -> Self:
        """A validated copy with ``changes`` merged in: a nested config merges key by key, anything else replaces.

        Args:
            changes: a parsed YAML mapping or ``--set`` overrides.
            section: how errors name this config.
        """
        section = section or self.SECTION
        if not isinstance(changes, Mapping):
            raise ConfigError(f"{section}: expected a mapping of keys, got {type(changes).__name__}")
        doc = self.model_dump()
        for key, value in changes.items():
            current = getattr(self, key, None) if key in type(self).model_fields else None
            if isinstance(current, ConfigModel) and isinstance(value, Mapping):
                doc[key] = current.merged(value, section=_join(section, key))
            else:
                doc[key] = value
        return type(self).validated(doc, section)


def _join(section: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{section}[{key}]"
    if section.endswith(":"):  # a file named as the section: "path/to/file: data.seed"
        return f"{section} {key}"
    return f"{section}.{key}" if section and section != "config" else str(key)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class that owns the last key of ``loc`` (for "allowed keys" in an unknown-key error)."""
    for key in loc:
        field = model.model_fields.get(str(key))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return model if key == loc[-1] else None
        model = annotation
    return model


def describe(exc: ValidationError, model: type[BaseModel], section: str) -> str:
    """One line for the first error of ``exc``: the key, the value given and what is allowed.

    Args:
        exc: pydantic's error.
        model: the config class validated.
        section: its name in the message.
    """
    errors = exc.errors()
    err = errors[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    where = section
    for part in loc:
        where = _join(where, part)
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        owner = _model_at(model, loc) or model
        allowed = ", ".join(owner.model_fields)
        message = f"{where} = {value!r}: unknown key; allowed keys: {allowed}"
    elif err["type"] == "missing":
        message = f"{where}: missing"
    else:
        text = err["msg"].removeprefix("Value error, ")
        message = f"{where} = {value!r}: {text[:1].lower()}{text[1:]}"
    more = len(errors) - 1
    return message + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def parse_batches(text: str, option: str = "--batch") -> tuple[int, ...]:
    """``"1,8,32"`` to ``(1, 8, 32)``: the one parser of a batch-size list, with a one-line error naming ``option``.

    Args:
        text: comma-separated positive integers.
        option: how the error names the input.
    """
    try:
        return TypeAdapter(Batches).validate_python(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{option} = {text!r}: {err['msg'][:1].lower()}{err['msg'][1:]} (e.g. 1,8,32)") from None
