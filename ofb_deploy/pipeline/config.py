"""``PipelineConfig``: what ``ofb-deploy run`` does, as one YAML document with a section per stage.

Precedence, lowest first: the embedded preset (``ofb_deploy/configs/{default,quick}.yaml``), the chosen model's
settings for that preset when the package has some (``ofb_deploy/configs/models/<model>.yaml``, e.g. a model with no
shipped checkpoint trains its own, with a budget sized for it), a user YAML file (merged key by key), then
command-line overrides (``--model``, ``--target-flops`` ..., ``--set section.key=value``). Each stage section is
validated by the stage's own config class (``TrainConfig``, ``SearchConfig``, ``ValidateConfig`` ...) when the
config is loaded, so a typo fails before any work starts.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ofb_deploy.errors import ConfigError
from ofb_deploy.utils.config import check_keys, from_mapping

PRESETS = ("default", "quick")
PRETRAINED = "pretrained"  # `checkpoint: pretrained`: the model's pretrained weights (shipped, else timm's)
SECTIONS = ("data", "train", "search", "slice", "finetune", "export", "build", "validate", "targets")


@dataclass
class PipelineConfig:
    """One pipeline run.

    Args:
        name: a label for reports.
        out: run directory (``--out`` overrides it).
        model: registry name of the dense model (``list_models()``) or ``local-dir:PATH``.
        checkpoint: dense weights (model folder, weights file, or ``pretrained``: the model's pretrained weights,
            shipped in the package for the presets, else timm's); when set, dense training is skipped.
        pretrained: start dense training from timm's pretrained weights (network needed).
        data: ``DataConfig`` fields.
        train: ``TrainConfig`` fields of dense training.
        search: ``SearchConfig`` fields (``target_flops``: a fraction such as ``"0.5"`` or MACs such as ``"800M"``).
        slice: ``align`` (round widths up to a multiple).
        finetune: ``TrainConfig`` fields plus ``enabled`` and ``teacher`` (``null``: the dense model; ``none``).
        export: options of the export stage.
        build: ``backends`` (``auto``: every backend this machine can build) and ``precisions``.
        validate: ``ValidateConfig`` fields.
        targets: optional pass/fail limits the report checks (``max_flops_ratio``, ``max_top1_drop``,
            ``min_speedup: {backend: {batch: x}}``).
    """

    name: str = "default"
    out: str = "runs/default"
    model: str = "vit_fmnist_tiny"
    checkpoint: str | None = None
    pretrained: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    slice: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    validate: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in SECTIONS:
            value = getattr(self, key)
            if value is None:
                setattr(self, key, {})
            elif not isinstance(value, dict):
                raise ConfigError(f"config section {key!r} must be a mapping, got {type(value).__name__}")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("config 'model' must be a model name")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready dict."""
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> PipelineConfig:
        """Build from a parsed YAML/JSON mapping (unknown keys are an error)."""
        return from_mapping(cls, copy.deepcopy(data), source)

    # -- typed views of the sections (each validates its own keys) ------------------------------------------
    def data_config(self) -> Any:
        from ofb_deploy.data import DataConfig

        return DataConfig.from_dict(self.data)

    def train_config(self) -> Any:
        from ofb_deploy.train import TrainConfig

        return TrainConfig.from_dict(self.train)

    def search_config(self) -> Any:
        from ofb_deploy.search.config import SearchConfig

        return SearchConfig.from_dict(self.search)

    def finetune_enabled(self) -> bool:
        return bool(self.finetune.get("enabled", True))

    def finetune_teacher(self) -> str | None:
        return self.finetune.get("teacher")

    def finetune_config(self) -> Any:
        from ofb_deploy.train import TrainConfig

        return TrainConfig.from_dict({k: v for k, v in self.finetune.items() if k not in ("enabled", "teacher")})

    def validate_config(self) -> Any:
        from ofb_deploy.validate.validate import ValidateConfig

        return ValidateConfig.from_dict(self.validate)

    def _check_search_target(self) -> None:
        """Fail on an impossible FLOPs target before dense training starts (the dense widths are known now)."""
        from ofb_deploy.data import dataset_info
        from ofb_deploy.models import get_arch_spec
        from ofb_deploy.search.space import resolve_flops_target

        search = self.search_config()
        if self.checkpoint not in (None, PRETRAINED):
            return  # the checkpoint's own architecture decides; the search checks it when it loads it
        info = dataset_info(self.data_config())
        spec = get_arch_spec(self.model, num_classes=info.num_classes, in_chans=info.in_chans)
        resolve_flops_target(search.target_flops, spec, search.space())

    def _check_pretrained(self) -> None:
        """``checkpoint: pretrained`` on a model with shipped weights: they must fit the data (fails early)."""
        from ofb_deploy.data import dataset_info
        from ofb_deploy.models import get_arch_spec
        from ofb_deploy.models.checkpoint import read_model_dir_spec
        from ofb_deploy.models.pretrained import pretrained_dir

        shipped = pretrained_dir(self.model)
        if shipped is None:
            import timm

            if not timm.is_model(self.model.partition(".")[0]):
                raise ConfigError(f"checkpoint: pretrained: no weights ship for {self.model}, and timm has none")
            return  # timm's weights: fetched (network) when the train stage runs
        info = dataset_info(self.data_config())
        want = get_arch_spec(self.model, num_classes=info.num_classes, in_chans=info.in_chans)
        if read_model_dir_spec(shipped) != want:
            raise ConfigError(f"checkpoint: pretrained: the shipped {shipped.name} weights do not fit this data")

    def check(self) -> None:
        """Validate every section now, so a bad key fails before hours of work."""
        self.data_config()
        if self.checkpoint is None:
            self.train_config()
        elif self.checkpoint == PRETRAINED:
            self._check_pretrained()
        self._check_search_target()
        if self.finetune_enabled():
            self.finetune_config()
        self.validate_config()
        check_keys(self.slice, {"align"}, "slice config")
        check_keys(self.build, {"backends", "precisions"}, "build config")
        check_keys(self.export, {"opset", "fp16", "int8", "parity_images"}, "export config")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
    """The embedded preset ``name`` (``default`` or ``quick``) as a mapping."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    text = resources.files("ofb_deploy").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def model_preset_dict(model: str, preset: str) -> dict[str, Any]:
    """The package's settings of ``model`` for ``preset`` (``configs/models/<model>.yaml``), ``{}`` when none."""
    name = model.partition(".")[0]
    path = resources.files("ofb_deploy").joinpath("configs", "models", f"{name}.yaml")
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return doc.get(preset) or {}


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["search.epochs=4", "validate.batches=[1,32]"]`` to a nested mapping (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. search.epochs=4), got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set")
        node[parts[-1]] = value
    return out


def load_config(
    preset: str = "default",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> PipelineConfig:
    """The pipeline config: preset, then the user's file, then overrides; validated.

    Args:
        preset: embedded preset to start from.
        config_file: a YAML file merged over the preset.
        overrides: a nested mapping merged last (from CLI flags and ``--set``).
    """
    doc = preset_dict(preset)
    source = f"preset {preset}"
    user = read_yaml(config_file) if config_file is not None else {}
    model = deep_merge(deep_merge(doc, user), overrides or {}).get("model")
    if isinstance(model, str):
        doc = deep_merge(doc, model_preset_dict(model, preset))
    if config_file is not None:
        doc = deep_merge(doc, user)
        source = str(config_file)
    if overrides:
        doc = deep_merge(doc, overrides)
    config = PipelineConfig.from_dict(doc, source=source)
    config.check()
    return config
