"""``PipelineConfig``: what ``ofb-deploy run`` does, as one YAML document with a typed section per stage.

Precedence, lowest first: the embedded preset (``ofb_deploy/configs/{default,quick}.yaml``), the chosen model's
settings for that preset when the package has some (``configs/models/<model>.yaml``, a ``ModelPresets``: e.g. a
model with no shipped checkpoint trains its own, with a budget sized for it), a user YAML file (merged key by key),
then command-line overrides (``--model``, ``--target-flops`` ..., ``--set section.key=value``). Every section is
the stage's own config model (``DataConfig``, ``TrainConfig``, ``SearchConfig`` ...), so an unknown key, a wrong
type or an impossible value fails with one line while the config loads; ``check`` then verifies, still before any
work, what needs this machine: the data, the model, the checkpoint, the FLOPs target and the backends to build.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BeforeValidator, Field

from ofb_deploy.build.config import BuildConfig
from ofb_deploy.choices import Preset
from ofb_deploy.data.config import DataConfig
from ofb_deploy.errors import ConfigError
from ofb_deploy.export.config import ExportConfig
from ofb_deploy.finetune.config import FinetuneConfig
from ofb_deploy.models.pretrained import PRETRAINED
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.slicing.config import SliceConfig
from ofb_deploy.train.config import TrainConfig
from ofb_deploy.utils.config import ConfigModel
from ofb_deploy.validate.config import TargetsConfig, ValidateConfig

PRESETS = Preset.values()


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value  # `targets:` with nothing under it: the section's defaults


def _section(model: type[ConfigModel]) -> Any:
    return Annotated[model, BeforeValidator(_none_is_empty), Field(default_factory=model)]


DataSection = _section(DataConfig)
TrainSection = _section(TrainConfig)
SearchSection = _section(SearchConfig)
SliceSection = _section(SliceConfig)
FinetuneSection = _section(FinetuneConfig)
ExportSection = _section(ExportConfig)
BuildSection = _section(BuildConfig)
ValidateSection = _section(ValidateConfig)
TargetsSection = _section(TargetsConfig)


# NOTE: the run file's section is called `validate`, which shadows pydantic's deprecated BaseModel.validate, and a
# model-settings file's `default` preset shadows ConfigModel.default (a classmethod no settings file calls)
warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)
warnings.filterwarnings("ignore", message='Field name "default" in "ModelPresets"', category=UserWarning)


class PipelineConfig(ConfigModel):
    """One pipeline run.

    Args:
        name: a label for reports.
        out: run directory (``--out`` overrides it).
        model: registry name of the dense model (``ofb-deploy models``) or ``local-dir:PATH``.
        checkpoint: dense weights (model folder, weights file, or ``pretrained``: the model's pretrained weights,
            shipped in the package for the presets, else timm's); when set, dense training is skipped.
        pretrained: start dense training from timm's pretrained weights (network needed; not with a checkpoint).
        data: ``DataConfig``. train: ``TrainConfig`` of dense training. search: ``SearchConfig``.
        slice: ``SliceConfig``. finetune: ``FinetuneConfig``. export: ``ExportConfig``. build: ``BuildConfig``.
        validate: ``ValidateConfig``. targets: ``TargetsConfig``, the pass/fail limits the report checks.
    """

    SECTION: ClassVar[str] = "config"

    name: str = "default"
    out: Annotated[str, Field(min_length=1)] = "runs/default"
    model: Annotated[str, Field(min_length=1)] = "vit_fmnist_tiny"
    checkpoint: Annotated[str, Field(min_length=1)] | None = None
    pretrained: bool = False
    data: DataSection
    train: TrainSection
    search: SearchSection
    slice: SliceSection
    finetune: FinetuneSection
    export: ExportSection
    build: BuildSection
    validate: ValidateSection
    targets: TargetsSection

    def consistent(self) -> PipelineConfig:
        """Raise one line when two sections contradict each other (no file or library is touched)."""
        if self.pretrained and self.checkpoint is not None:
            raise ConfigError(
                f"pretrained: true trains from timm's weights, but checkpoint: {self.checkpoint} skips training; "
                "set one of them"
            )
        if self.targets.min_speedup and not self.validate.latency:
            raise ConfigError("targets.min_speedup needs timings, but validate.latency is false")
        timed = {str(b) for b in self.validate.batches}
        for key, per_batch in self.targets.min_speedup.items():
            for batch in per_batch:
                if batch not in timed:
                    raise ConfigError(
                        f"targets.min_speedup.{key}.{batch}: batch {batch} is never timed "
                        f"(validate.batches: {', '.join(sorted(timed, key=int))})"
                    )
        return self

    def check(self) -> None:
        """Validate against this machine now (data, model, checkpoint, FLOPs target, backends), before any work."""
        from ofb_deploy.pipeline.checks import check_config

        check_config(self)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file, with one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"malformed YAML in {path}{where}: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping, got {type(doc).__name__}")
    return doc


def preset_dict(name: str) -> dict[str, Any]:
    """The embedded preset ``name`` (``Preset``) as a mapping."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    text = resources.files("ofb_deploy").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


class ModelPresets(ConfigModel):
    """A model's own settings per preset (``configs/models/<model>.yaml``): partial pipeline configs.

    Each one is merged over its preset and validated as a ``PipelineConfig`` there, so an unknown key fails with
    one line naming the file, the preset and the key; an unknown preset name fails here.

    Args:
        default: what the model changes in the ``default`` preset.
        quick: what it changes in the ``quick`` preset.
    """

    SECTION: ClassVar[str] = "model presets"

    default: dict[str, Any] = Field(default_factory=dict)
    quick: dict[str, Any] = Field(default_factory=dict)


def model_presets_path(model: str) -> Path:
    """Where the package keeps ``model``'s own settings (``configs/models/<model>.yaml``; a tag is ignored)."""
    return Path(str(resources.files("ofb_deploy").joinpath("configs", "models", f"{model.partition('.')[0]}.yaml")))


def read_model_presets(path: str | Path) -> ModelPresets:
    """A model-settings file, validated (malformed YAML, a wrong type or an unknown key fail with one line)."""
    return ModelPresets.from_dict(read_yaml(path), section=f"{path}:")


def _with_model_presets(config: PipelineConfig, model: str, preset: str) -> PipelineConfig:
    path = model_presets_path(model)
    if not path.is_file():
        return config
    layer = getattr(read_model_presets(path), preset)
    if "model" in layer:
        raise ConfigError(f"{path}: {preset}.model: a model's own settings cannot name another model")
    return config.merged(layer, section=f"{path}: {preset}")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["search.epochs=4", "validate.batches=[1,32]"]`` to a nested mapping (values parsed as YAML scalars).

    The keys and values are checked by the config models when the mapping is merged (``ConfigModel.merged``).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise ConfigError(f"--set expects SECTION.KEY=VALUE (e.g. search.epochs=4), got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set")
        node[parts[-1]] = value
    return out


def _adopt_checkpoint_model(config: PipelineConfig, model_given: bool) -> PipelineConfig:
    """A checkpoint folder decides the model: a model named too must be the same one (else one line)."""
    from ofb_deploy.artifacts import model_stem
    from ofb_deploy.models.checkpoint import checkpoint_model

    if config.checkpoint in (None, PRETRAINED) or model_stem(config.checkpoint) is None:
        return config
    held = checkpoint_model(config.checkpoint, config.model if model_given else None)
    return config if held == config.model else config.replace(model=held)


def load_config(
    preset: str = "default",
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: list[str] | None = None,
    *,
    check: bool = True,
) -> PipelineConfig:
    """The pipeline config: preset, then the user's file, then overrides, then ``--set`` items; validated.

    Args:
        preset: embedded preset to start from (``Preset``).
        config_file: a YAML file merged over the preset.
        overrides: a nested mapping merged next (from CLI flags, or ``parse_set``).
        sets: ``section.key=value`` items merged last (``parse_set``).
        check: also run ``PipelineConfig.check`` (data, model, checkpoint, target and backends on this machine).
    """
    base = PipelineConfig.from_dict(preset_dict(preset), section="config")
    layers = [read_yaml(config_file) if config_file is not None else {}, dict(overrides or {}), parse_set(sets or [])]
    named = [layer["model"] for layer in layers if isinstance(layer.get("model"), str)]
    model = named[-1] if named else base.model
    # NOTE: a checkpoint folder may decide the model (``_adopt_checkpoint_model``); that model's own settings then
    # apply instead, so the result does not depend on whether the model was named or read from the checkpoint
    for _ in range(2):
        config = _with_model_presets(base, model, preset)
        for layer in layers:
            config = config.merged(layer)
        config = _adopt_checkpoint_model(config, bool(named))
        if config.model == model:
            break
        model = config.model
    config = config.consistent()
    if check:
        config.check()
    return config


__all__ = [
    "PRESETS",
    "PRETRAINED",
    "ModelPresets",
    "PipelineConfig",
    "load_config",
    "model_presets_path",
    "parse_set",
    "preset_dict",
    "read_model_presets",
    "read_yaml",
]
