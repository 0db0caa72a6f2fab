"""``SearchConfig``: every knob of the OFB search, with defaults sized for a CPU search of the presets.

OFB's own settings (arXiv 2403.15835, sec. 4.1) are 100 epochs with 20 of warm-up on ImageNet; ours default to a
short search from an already-trained dense model (Fashion-MNIST presets converge in 6 epochs of 10k images).
Loss weights and constants follow OFB except two, because our search has ~100x fewer steps: alpha's lr is
larger (5e-2), and w_flops is 50, not 5 (with 5 the CE pull on alpha outweighs the quadratic FLOPs penalty
in a few hundred steps and the result ends far above the target; with 50 it lands within a few percent).
Pruning starts once the warm-up is over (while lambda is near 1, V hardly reaches CE).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ofb_deploy.errors import ConfigError
from ofb_deploy.search.space import SpaceConfig
from ofb_deploy.utils.config import from_mapping

# fields that do not change the search result (left out of the inputs hash)
RUNTIME_FIELDS = ("workers", "stop_after_epochs", "log_every")


@dataclass
class SearchConfig:
    """Settings of one search.

    Args:
        target_flops: a fraction of the dense MACs (``0.5``) or absolute MACs (``1.2G``, ``800M``).
        epochs: search epochs.
        batch_size: images per step on each process.
        lr: AdamW lr of weights and importance scores (cosine to ``min_lr``).
        min_lr: final lr of the cosine schedule.
        alpha_lr: AdamW lr of the architecture logits (constant, betas (0.5, 0.999), no decay).
        decoder_lr: AdamW lr of the PMIM decoder and mask token.
        weight_decay: decay of matrix weights (not of biases, norms, tokens or scores).
        warmup_epochs: epochs over which lambda falls and the PMIM mask ratio rises.
        lambda_start: lambda(t) at the start (mask mostly sigmoid(S)).
        lambda_end: lambda(t) after the warm-up.
        mask_ratio_start: PMIM mask ratio at the start.
        mask_ratio_end: PMIM mask ratio after the warm-up.
        pmim: use PMIM (off once every module is final).
        prune_per_epoch: hard pruning rounds per epoch.
        prune_threshold: drop candidates with p <= prune_threshold / K.
        w_onehot: weight of each module's one-hot loss.
        c_attn: score L1 weight of attention modules.
        c_mlp: score L1 weight of MLP modules.
        c_embed: score L1 weight of the embed module.
        w_flops: weight of the FLOPs loss.
        label_smoothing: CE label smoothing.
        grad_clip: max global grad norm of the weights (``None``: off).
        align: candidate widths are multiples of this.
        embed_min: smallest embed width (fraction).
        mlp_min: smallest MLP width (fraction).
        mlp_steps: MLP width step is 1/mlp_steps.
        train_size: training images used when the data config sets no cap (``None``: all).
        seed: seed of weights, data order and PMIM masks.
        workers: data loader workers.
        stop_after_epochs: stop (resumably) after this many epochs in this invocation.
        log_every: refresh the progress text every this many steps.
    """

    target_flops: str = "0.5"
    epochs: int = 6
    batch_size: int = 128
    lr: float = 5e-4
    min_lr: float = 1e-5
    alpha_lr: float = 5e-2
    decoder_lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    lambda_start: float = 0.99
    lambda_end: float = 0.1
    mask_ratio_start: float = 0.05
    mask_ratio_end: float = 0.25
    pmim: bool = True
    prune_per_epoch: int = 3
    prune_threshold: float = 0.2
    w_onehot: float = 0.5
    c_attn: float = 4e-4
    c_mlp: float = 1e-4
    c_embed: float = 1e-4
    w_flops: float = 50.0
    label_smoothing: float = 0.1
    grad_clip: float | None = None
    align: int = 8
    embed_min: float = 0.5
    mlp_min: float = 0.25
    mlp_steps: int = 8
    train_size: int | None = 10000
    seed: int = 0
    workers: int = 0
    stop_after_epochs: int | None = None
    log_every: int = 5

    def __post_init__(self) -> None:
        self.target_flops = str(self.target_flops)
        for name in ("epochs", "batch_size", "prune_per_epoch", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"search {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "alpha_lr", "decoder_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"search {name} must be positive, got {getattr(self, name)}")
        if not 0 < self.prune_threshold < 1:
            raise ConfigError(f"prune_threshold must be in (0, 1), got {self.prune_threshold}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        self.space()  # validates the grid settings

    def space(self) -> SpaceConfig:
        """The candidate grid settings."""
        return SpaceConfig(align=self.align, embed_min=self.embed_min, mlp_min=self.mlp_min, mlp_steps=self.mlp_steps)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)

    def result_dict(self) -> dict[str, Any]:
        """The fields that decide the result (for the inputs hash)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    @classmethod
    def from_dict(cls, data: Any) -> SearchConfig:
        """Validate and build from a JSON-like dict (unknown keys are an error)."""
        return from_mapping(cls, data, "search config")
