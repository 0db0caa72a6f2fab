"""``check_config``: what a pipeline config needs from this machine, checked before any work.

The config models have already checked every key, type and range (``PipelineConfig`` loads them); here the
data set must exist, the model must be known, a checkpoint must be readable and fit the model, the FLOPs target
must be reachable from the dense widths, every backend named for the build must be buildable here, and every
speedup target must name a backend and precision the run builds and a batch it times. Each failure is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ofb_deploy.build.config import AUTO
from ofb_deploy.errors import ConfigError, ModelError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.pretrained import PRETRAINED

if TYPE_CHECKING:
    from ofb_deploy.pipeline.config import PipelineConfig


def _pretrained_spec(config: PipelineConfig, want: ArchSpec) -> ArchSpec:
    """``checkpoint: pretrained``: shipped weights must fit the data; else timm must know the model."""
    from ofb_deploy.models.checkpoint import read_model_dir_spec
    from ofb_deploy.models.pretrained import pretrained_dir

    shipped = pretrained_dir(config.model)
    if shipped is None:
        import timm

        if not timm.is_model(config.model.partition(".")[0]):
            raise ConfigError(f"checkpoint: pretrained: no weights ship for {config.model}, and timm has none")
        return want  # timm's weights: fetched (network) when the train stage runs
    if read_model_dir_spec(shipped) != want:
        raise ConfigError(f"checkpoint: pretrained: the shipped {shipped.name} weights do not fit this data")
    return want


def dense_spec(config: PipelineConfig) -> ArchSpec:
    """The dense model's widths: the named model's, or the checkpoint's (which is read, so a bad file fails now).

    Args:
        config: the pipeline config.
    """
    from ofb_deploy.data import dataset_info
    from ofb_deploy.models import get_arch_spec
    from ofb_deploy.models.checkpoint import load_dense

    info = dataset_info(config.data)
    if config.checkpoint is None:
        return get_arch_spec(config.model, num_classes=info.num_classes, in_chans=info.in_chans)
    if config.checkpoint == PRETRAINED:
        want = get_arch_spec(config.model, num_classes=info.num_classes, in_chans=info.in_chans)
        return _pretrained_spec(config, want)
    path = Path(config.checkpoint)
    if not path.exists():
        raise ModelError(f"checkpoint not found: {path}")
    # NOTE: reading the weights here refuses a pickle payload (weights_only) and a misfit before the first stage
    return load_dense(path, config.model, num_classes=info.num_classes, in_chans=info.in_chans).spec


def _check_build(config: PipelineConfig) -> list[tuple[str, str]]:
    from ofb_deploy.engines.registry import require_backend

    if config.build.backends != AUTO:
        for backend in config.build.backends:
            require_backend(backend)
    plan = config.build.plan()
    if not plan:
        raise ConfigError("build.backends: auto finds no backend this machine can build (`ofb-deploy build --list`)")
    return plan


def _check_targets(config: PipelineConfig, plan: list[tuple[str, str]]) -> None:
    built = {f"{b}:{p}" for b, p in plan}
    for key in config.targets.min_speedup:
        backend, _, precision = key.partition(".")
        precision = precision or "fp32"
        measured = backend == "torch" and precision == "fp32"
        if not measured and f"{backend}:{precision}" not in built:
            pairs = ", ".join(sorted(built))
            raise ConfigError(f"targets.min_speedup.{key}: {backend} {precision} is not built (build plan: {pairs})")
        if config.validate.backends is not None and backend not in config.validate.backends:
            raise ConfigError(
                f"targets.min_speedup.{key}: {backend} is not validated (validate.backends: "
                f"{', '.join(config.validate.backends)})"
            )


def check_config(config: PipelineConfig) -> None:
    """Raise one line for the first thing this machine cannot do for ``config``.

    Args:
        config: a loaded pipeline config (keys, types and ranges already valid).
    """
    from ofb_deploy.models.space import resolve_flops_target

    spec = dense_spec(config)
    if config.search.target_flops is not None:
        resolve_flops_target(config.search.target_flops, spec, config.search.space())
    if config.search.target_latency is not None or config.search.latency_table is not None:
        from ofb_deploy.profile.table import LatencyTable, arch_key, check_profilable

        check_profilable(spec)  # a Swin has no latency table: fail before the first stage
        if config.search.latency_table is not None:
            table = LatencyTable.load(config.search.latency_table)  # a missing or malformed table fails now
            if table.key.get("arch") != arch_key(spec):
                raise ConfigError(f"search.latency_table {config.search.latency_table} was profiled for another model")
    _check_targets(config, _check_build(config))
