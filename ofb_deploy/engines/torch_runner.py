"""``TorchRunner``: the eager PyTorch reference every engine is compared against (CPU or CUDA).

It runs the ``OfbViT`` exactly as trained, in fp32 and ``torch.inference_mode``; a model folder, a module or a
zero-argument loader returning a module are all accepted, and nothing is loaded before ``activate()``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ofb_deploy.engines.base import Runner, TensorSpec
from ofb_deploy.errors import BackendUnavailableError, ConfigError
from ofb_deploy.models.checkpoint import load_model_dir
from ofb_deploy.models.io import INPUT_NAME, OUTPUT_NAME


class TorchRunner(Runner):
    """Eager PyTorch inference.

    Args:
        model: an ``nn.Module``, a model folder (``artifacts.model_stem``) or a loader.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` too).
        threads: intra-op CPU threads while active (``None``: leave torch's setting).
        name: label for reports.
    """

    backend = "torch"

    def __init__(
        self,
        model: Any,
        device: str = "cpu",
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self._source = model
        self.device_name = device
        self.threads = threads
        self._model: Any = None
        self._device: Any = None
        self._old_threads: int | None = None

    def _load(self) -> Any:
        from torch import nn

        src = self._source
        if isinstance(src, nn.Module):
            return src
        if isinstance(src, str | Path):
            return load_model_dir(Path(src))
        if isinstance(src, Callable):
            return src()
        raise ConfigError(f"TorchRunner needs a module, a model folder or a loader, got {type(src).__name__}")

    def _activate(self) -> None:
        import torch

        if self.device_name.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError("torch on cuda needs a CUDA GPU and a CUDA build of torch; none found")
        self._device = torch.device(self.device_name)
        if self.threads is not None:
            self._old_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        self._model = self._load().to(self._device).eval()

    def _deactivate(self) -> None:
        import torch

        if self._old_threads is not None:
            torch.set_num_threads(self._old_threads)
            self._old_threads = None
        self._model = None
        if self._device is not None and self._device.type == "cuda":
            torch.cuda.empty_cache()

    def _input_specs(self) -> list[TensorSpec]:
        spec = getattr(self._model, "spec", None)
        if spec is None:
            return [TensorSpec(INPUT_NAME, ("batch", -1, -1, -1), "float32")]
        return [TensorSpec(INPUT_NAME, ("batch", spec.in_chans, spec.img_size, spec.img_size), "float32")]

    def _forward(self, x: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self._model(x)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(feed[INPUT_NAME], dtype=np.float32)).to(self._device)
        return {OUTPUT_NAME: self._forward(x).float().cpu().numpy()}

    def _bind(self, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        return {INPUT_NAME: torch.from_numpy(np.ascontiguousarray(feed[INPUT_NAME], dtype=np.float32)).to(self._device)}

    def _run_bound(self, bound: dict[str, Any]) -> None:
        self._forward(bound[INPUT_NAME])

    def synchronize(self) -> None:
        import torch

        if self._device is not None and self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def describe(self) -> dict[str, Any]:
        import torch

        info = {**super().describe(), "library": "torch", "version": torch.__version__, "precision": "fp32"}
        info["device"] = self.device_name
        if self.device_name.startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(self.device_name))
        info["threads"] = self.threads if self.threads is not None else torch.get_num_threads()
        return info
