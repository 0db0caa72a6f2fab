"""Model registry: ``register_model``, ``list_models`` and the one way to build a model, ``create_model``.

As in timm, a registered name maps to a function returning the model's config, here an ``ArchSpec``; the spec's
``family`` picks the module that builds it (``build_model``: ``OfbViT`` or ``OfbSwin``). ``local-dir:PATH`` rebuilds
a saved model folder (JSON config plus safetensors) with no code edits. ``pretrained=True`` loads the weights
shipped in the package when the model has some (``models.pretrained``; a ``name.tag`` picks one), else timm's (needs
the network).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ofb_deploy.artifacts import model_weights
from ofb_deploy.errors import ModelError
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.checkpoint import LOCAL_DIR_PREFIX, load_checkpoint, load_model_dir, read_model_dir_spec
from ofb_deploy.models.pretrained import pretrained_dir
from ofb_deploy.models.swin import OfbSwin
from ofb_deploy.models.vit import OfbViT

_REGISTRY: dict[str, Callable[..., ArchSpec]] = {}
FAMILY_MODELS: dict[str, Callable[[ArchSpec], nn.Module]] = {"vit": OfbViT, "swin": OfbSwin}


def build_model(spec: ArchSpec) -> nn.Module:
    """The dense module of ``spec`` (randomly initialised), by its family."""
    return FAMILY_MODELS[spec.family](spec)


def register_model(fn: Callable[..., ArchSpec]) -> Callable[..., ArchSpec]:
    """Decorator: register ``fn`` (returning an ``ArchSpec``) under its function name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a glob ``pattern`` (e.g. ``"test_*"``), sorted."""
    _ensure_variants()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def _ensure_variants() -> None:
    # NOTE: imported here, not at module top, because variants.py imports register_model from this module.
    import ofb_deploy.models.variants  # noqa: F401


def get_arch_spec(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
) -> ArchSpec:
    """The ``ArchSpec`` of a registered name (or ``local-dir:`` folder), with optional overrides.

    Args:
        name: registry name or ``local-dir:PATH``.
        num_classes: classifier outputs, if not the default.
        in_chans: input channels, if not the default (mean/std are averaged or repeated to fit).
        img_size: input resolution, if not the default.
    """
    if name.startswith(LOCAL_DIR_PREFIX):
        spec = read_model_dir_spec(Path(name[len(LOCAL_DIR_PREFIX) :]))
    else:
        _ensure_variants()
        name = name.partition(".")[0]  # a pretrained tag (``name.tag``) does not change the architecture
        if name not in _REGISTRY:
            raise ModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
        spec = _REGISTRY[name]()
    return _override(spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size)


def _override(spec: ArchSpec, **overrides: Any) -> ArchSpec:
    changes = {k: v for k, v in overrides.items() if v is not None and getattr(spec, k) != v}
    if "in_chans" in changes:
        n = changes["in_chans"]
        if n == 1:
            changes["mean"] = (sum(spec.mean) / len(spec.mean),)
            changes["std"] = (sum(spec.std) / len(spec.std),)
        else:
            changes["mean"] = tuple(spec.mean[i % len(spec.mean)] for i in range(n))
            changes["std"] = tuple(spec.std[i % len(spec.std)] for i in range(n))
    return spec.replace(**changes) if changes else spec


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
) -> nn.Module:
    """Build a model by name, optionally loading weights.

    Args:
        name: registry name (``list_models()``) or ``local-dir:PATH`` of a saved model folder.
        num_classes: classifier outputs, if not the default.
        in_chans: input channels, if not the default.
        img_size: input resolution, if not the default.
        checkpoint: a ``.safetensors`` file or a ``.pth`` state dict (loaded with ``weights_only=True``).
        pretrained: load timm's pretrained weights for the same name (needs network access).
    """
    if name.startswith(LOCAL_DIR_PREFIX):
        model = load_model_dir(Path(name[len(LOCAL_DIR_PREFIX) :]))
        spec = _override(model.spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
        if spec != model.spec:
            raise ModelError(f"{name}: a saved model cannot change classes, channels or size on load")
    else:
        spec = get_arch_spec(name, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
        model = build_model(spec)
        if pretrained:
            _load_pretrained(model, name)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def _load_pretrained(model: nn.Module, name: str) -> None:
    """Shipped weights of ``name`` when the package has them (offline), else timm's."""
    folder = pretrained_dir(name)
    if folder is None:
        return _load_timm_pretrained(model, name)
    shipped = read_model_dir_spec(folder)
    if shipped != model.spec:
        raise ModelError(
            f"the shipped weights {folder.name} are for {shipped.num_classes} classes, {shipped.in_chans} channel(s) "
            f"at {shipped.img_size} px; this model has {model.spec.num_classes}, {model.spec.in_chans}, "
            f"{model.spec.img_size}"
        )
    load_checkpoint(model, model_weights(folder))


def _load_timm_pretrained(model: nn.Module, name: str) -> None:
    import timm

    spec = model.spec
    try:
        src = timm.create_model(
            name,
            pretrained=True,
            num_classes=spec.num_classes,
            in_chans=spec.in_chans,
            img_size=spec.img_size,
        )
    except Exception as exc:  # timm raises many types (HTTP, hub, runtime) for one cause: no weights
        raise ModelError(
            f"cannot fetch timm pretrained weights for {name} (network needed): {str(exc).splitlines()[0]}"
        ) from exc
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    if missing or unexpected:
        raise ModelError(f"timm {name} weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
