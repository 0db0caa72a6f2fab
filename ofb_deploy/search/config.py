"""``SearchConfig``: every knob of the search, with the defaults the default run uses (one home for them).

The default search chooses the widths by measured loss before the first step (``finalize_at: 0``,
``choose_by: loss``, ``select.py``): on the converged weights, the distillation loss on held-out training images
ranks the candidates as their fine-tuned top-1 ranks them (docs/method.md). The search pass then trains the
chosen subnet with distillation. With ``finalize_at`` above 0 the OFB bi-mask search (arXiv 2403.15835) runs
first: soft masks, architecture logits with the authors' ratios rather than their epoch counts (a pruning round
every ``prune_every`` steps from the first step, alpha's peak lr ``alpha_move / prune_every``), then the joint
choice at the deadline. Every deviation from the authors is listed with its measurement in docs/method.md.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, model_validator

from ofb_deploy.choices import AlphaInit, BuildBackend, ChooseBy, ScoreInit
from ofb_deploy.models.space import SpaceConfig, WidthFraction, check_flops_target, parse_latency
from ofb_deploy.timing.config import PROFILE_BATCH
from ofb_deploy.utils.config import (
    ConfigModel,
    Float,
    Fraction,
    ImageCount,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Smoothing,
)

# fields that do not change the search result (left out of the inputs hash)
RUNTIME_FIELDS = ("workers", "stop_after_epochs", "log_every")
FlopsTarget = Annotated[str, BeforeValidator(check_flops_target)]


def _check_latency(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("use a number and a unit, like 1.5ms or 800us, or a share of the dense latency, like 0.6x")
    try:
        parse_latency(value)
    except Exception:  # noqa: BLE001  (ConfigError, re-raised as the ValueError pydantic turns into one line)
        raise ValueError(
            "use a positive number and a unit, like 1.5ms or 800us, or a share in (0, 1] of dense latency, like 0.6x"
        ) from None
    return str(value).strip()


LatencyTarget = Annotated[str, BeforeValidator(_check_latency)]
OpenFraction = Annotated[Float, Field(gt=0, lt=1)]


class SearchConfig(ConfigModel):
    """Settings of one search.

    Args:
        target_flops: a fraction of the dense MACs (``0.5``) or absolute MACs (``1.2G``, ``800M``); ``None``: no
            FLOPs term (then ``target_latency`` must be set).
        target_latency: a latency budget (``1.5ms``, ``800us``, or ``0.6x``: a share of the dense model's latency)
            predicted from a latency table; rounds and the joint choice then meet it instead of the FLOPs target
            (both loss terms apply when both are set).
        latency_table: a table from ``ofb-deploy profile`` (``None``: profile ``latency_backend`` here).
        latency_backend: backend profiled when no table is given.
        latency_batch: batch size profiled when no table is given.
        latency_threads: CPU threads profiled when no table is given (``None``: every core this process may use;
            1, the default, as ``TimingConfig.threads``, so validate checks the prediction at the same count).
        w_latency: weight of the latency loss ((E[latency] - target) / dense latency)^2.
        epochs: search epochs (passes over the search's training images).
        batch_size: images per step on each process.
        lr: AdamW lr of weights and importance scores (cosine to ``min_lr``).
        min_lr: final lr of the cosine schedules (weights and alpha).
        alpha_lr: peak AdamW lr of the architecture logits; ``None``: ``alpha_move / prune_every``.
        alpha_move: how far (in logits) alpha may move between two pruning rounds, when ``alpha_lr`` is ``None``.
        decoder_lr: AdamW lr of the PMIM decoder and mask token.
        weight_decay: decay of matrix weights (not of biases, norms, tokens or scores).
        warmup_epochs: epochs over which lambda falls, the PMIM mask ratio rises and alpha's lr warms up.
        lambda_start: lambda(t) at the start (mask mostly sigmoid(S)).
        lambda_end: lambda(t) after the warm-up.
        mask_ratio_start: PMIM mask ratio at the start.
        mask_ratio_end: PMIM mask ratio after the warm-up.
        pmim: use PMIM (off once every module is final).
        prune_every: optimisation steps between two hard-pruning rounds (the first round is at this step).
        prune_threshold: drop candidates with p <= prune_threshold / K.
        finalize_at: share of the search steps after which the modules still open are chosen jointly (``choose_by``);
            the steps left train the final subnet (1.0: at the very end; 0: before the first step, on the dense
            weights, the kept units at full weight).
        w_onehot: weight of each module's one-hot loss.
        c_attn: score L1 weight of attention modules.
        c_mlp: score L1 weight of MLP modules.
        c_embed: score L1 weight of the embed module.
        w_flops: weight of the FLOPs loss.
        score_init: ``random`` (TruncNormal(0, 0.2), the authors') or ``magnitude`` (ranked like the dense
            weights' L2 magnitude, so the search starts from the magnitude baseline's choice of units).
        distill: replace the label cross-entropy by distillation from the dense model during the search.
        alpha_init: ``zero`` (the authors': uniform p) or ``target``: alpha tilted by width, one shared slope, so
            the expected cost starts at the target.
        choose_by: how the joint choice ranks combinations in the budget's band: ``loss`` (measured on held-out
            training images, ``select.py``) or ``logp`` (total log-probability under alpha).
        select_images: training images held out of the search for ``choose_by: loss``.
        select_per_width: candidates per embed width from each ranked generator of ``choose_by: loss``.
        select_moves: steps of the local search from the best candidate (``select.neighbours``).
        trials: with ``finalize_at: 0``, how many of the measured candidates train side by side, halved by held-out
            loss each round until one is left (``trials.py``; 1: take the best measured one at once).
        trial_steps: steps of the first halving round (doubled each round; all rounds take at most 40% of the
            first epoch's batches, so they end before its resume checkpoint).
        straight_through: give alpha the loss's gradient through V at full size (OFB scales it by 1 - lambda).
        mask_writes: multiply every write into the residual stream by the embed's survival V while it is open
            (OFB masks only the stream's start).
        label_smoothing: CE label smoothing.
        augment: augment the search's training images (random shift and flip), as ``train.augment`` does.
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

    SECTION: ClassVar[str] = "search"

    target_flops: FlopsTarget | None = "0.5"
    target_latency: LatencyTarget | None = None
    latency_table: str | None = None
    latency_backend: BuildBackend = BuildBackend.ORT_CPU
    latency_batch: PositiveInt = PROFILE_BATCH
    latency_threads: PositiveInt | None = 1
    w_latency: NonNegativeFloat = 50.0
    epochs: PositiveInt = 1
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 1e-3
    min_lr: NonNegativeFloat = 1e-5
    alpha_lr: PositiveFloat | None = None
    alpha_move: PositiveFloat = 0.3
    decoder_lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.05
    warmup_epochs: NonNegativeFloat = 0.3
    lambda_start: Fraction = 0.99
    lambda_end: Fraction = 0.1
    mask_ratio_start: Fraction = 0.05
    mask_ratio_end: Fraction = 0.25
    pmim: bool = False
    prune_every: PositiveInt = 8
    prune_threshold: OpenFraction = 0.2
    finalize_at: Annotated[Float, Field(ge=0, le=1)] = 0.0
    w_onehot: NonNegativeFloat = 0.5
    c_attn: NonNegativeFloat = 4e-4
    c_mlp: NonNegativeFloat = 1e-4
    c_embed: NonNegativeFloat = 1e-4
    w_flops: NonNegativeFloat = 50.0
    score_init: ScoreInit = ScoreInit.MAGNITUDE
    distill: bool = True
    alpha_init: AlphaInit = AlphaInit.TARGET
    choose_by: ChooseBy = ChooseBy.LOSS
    select_images: PositiveInt = 512
    select_per_width: PositiveInt = 4
    select_moves: NonNegativeInt = 6
    trials: PositiveInt = 4
    trial_steps: PositiveInt = 30
    straight_through: bool = True
    mask_writes: bool = True
    label_smoothing: Smoothing = 0.1
    augment: bool = False
    grad_clip: PositiveFloat | None = None
    align: PositiveInt = 8
    embed_min: WidthFraction = 0.5
    mlp_min: WidthFraction = 0.03125  # 1/32: a floor so low that any MLP with some use ends above it (planted check)
    mlp_steps: PositiveInt = 32
    train_size: ImageCount = None
    seed: NonNegativeInt = 0
    workers: NonNegativeInt = 0
    stop_after_epochs: PositiveInt | None = None
    log_every: PositiveInt = 5

    @model_validator(mode="after")
    def _one_target(self) -> SearchConfig:
        if self.target_flops is None and self.target_latency is None:
            raise ValueError("search needs a target: target_flops, target_latency or both")
        return self

    @staticmethod
    def targets(flops: str | None, latency: str | None, default_flops: str | None) -> str | None:
        """The FLOPs target that goes with the targets a user named: a latency budget alone replaces the FLOPs
        target (``none`` names no FLOPs target too); both named keep both; neither keeps ``default_flops``.

        Args:
            flops: the FLOPs target named (``None``: not named).
            latency: the latency target named (``None``: not named).
            default_flops: the FLOPs target otherwise in force (a preset's, or this model's default).
        """
        if flops is not None:
            return None if str(flops).strip().lower() == "none" else flops
        return None if latency is not None else default_flops

    @property
    def peak_alpha_lr(self) -> float:
        """Alpha's peak lr: ``alpha_lr`` if set, else sized to the pruning cadence (``alpha_move / prune_every``)."""
        return self.alpha_lr if self.alpha_lr is not None else self.alpha_move / self.prune_every

    def space(self) -> SpaceConfig:
        """The candidate grid settings."""
        return SpaceConfig(align=self.align, embed_min=self.embed_min, mlp_min=self.mlp_min, mlp_steps=self.mlp_steps)

    def result_dict(self) -> dict[str, Any]:
        """The fields that decide the result (for the inputs hash)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
