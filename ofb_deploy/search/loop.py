"""The OFB search loop (arXiv 2403.15835, Alg. 1): one backward per step, three AdamW optimizers, a pruning
round every ``prune_every`` steps from the first step on, a resume checkpoint each epoch, torchrun data
parallelism.

Loss per step: CE + detach(CE / L_mim) * L_mim + sum_m w * L_onehot(m) + w_flops * L_flops (with
``distill``, CE is the distillation loss from the dense model). Schedules: weights cosine; alpha linear
warm-up over ``warmup_epochs`` to ``peak_alpha_lr`` then cosine (as the authors); lambda and the PMIM ratio
linear over the warm-up. Gradients are
averaged over ranks by hand (one all-reduce of the flattened grads) rather than by a DDP wrapper, because the
set of used parameters changes as modules become final; alphas and scores are broadcast at the start and after
every pruning round, so all ranks keep the identical architecture.

Determinism: the data order of epoch e is fixed by (seed, e) (``set_epoch``); the global RNG (augmentation)
and the PMIM mask generator are reseeded from (seed, epoch, rank) at each epoch start. A run resumed from the
checkpoint of epoch e therefore replays exactly what the uninterrupted run did (on CPU).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ofb_deploy.errors import ArtifactError
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.search.cost import Cost, MacsCost
from ofb_deploy.search.finalize import closest_combination
from ofb_deploy.search.losses import budget_loss, module_onehot_loss
from ofb_deploy.search.pmim import PixelDecoder, local_normalize, local_window, mim_loss, random_token_mask
from ofb_deploy.search.pruning import make_alpha_optimizer, prune_round, sync_search_state
from ofb_deploy.search.select import HeldOut, choose_by_loss
from ofb_deploy.search.supernet import SupernetBase
from ofb_deploy.search.trials import Trial, TrialRounds
from ofb_deploy.train.distill import DistillConfig, kd_loss
from ofb_deploy.train.loop import cosine_lr
from ofb_deploy.utils.dist import all_reduce_mean_, broadcast_, rank, world_size
from ofb_deploy.utils.io import atomic_write_with

log = logging.getLogger(__name__)


@dataclass
class SearchState(TrialRounds):
    """Everything the loop trains and schedules; the resume checkpoint is its ``state_dict``."""

    supernet: SupernetBase
    decoder: PixelDecoder
    config: SearchConfig
    target_macs: int | None
    dense_macs: int
    steps_per_epoch: int
    teacher: torch.nn.Module | None = None
    latency: tuple[Cost, float] | None = None  # (LatencyCost, target ms) when the search targets latency
    held: HeldOut | None = None  # held-out images of ``choose_by: loss``
    opt_w: torch.optim.Optimizer = field(init=False)
    opt_d: torch.optim.Optimizer = field(init=False)
    opt_a: torch.optim.Optimizer | None = field(init=False)
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    prune_log: list[dict[str, Any]] = field(default_factory=list)
    selection: list[dict[str, Any]] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)  # candidates in training (``trials.py``)
    round_ends: list[int] = field(default_factory=list)  # global steps after which the trials are halved

    def __post_init__(self) -> None:
        cfg = self.config
        for mask in self.supernet.masks():
            mask.straight_through = cfg.straight_through
        self.supernet.mask_writes = cfg.mask_writes
        weights, _ = self.supernet.search_parameters()
        # NOTE: Swin's relative-position bias tables are not decayed (timm's no_weight_decay)
        decay = [
            p
            for name, p in self.supernet.model.named_parameters()
            if p.ndim >= 2 and not name.endswith("relative_position_bias_table")
        ]
        ids = {id(p) for p in decay}
        no_decay = [p for p in weights if id(p) not in ids]
        self.opt_w = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            foreach=True,
        )
        self.opt_d = torch.optim.AdamW(
            [*self.decoder.parameters(), self.supernet.mask_token],
            lr=cfg.decoder_lr,
            weight_decay=cfg.weight_decay,
            foreach=True,
        )
        self.opt_a = make_alpha_optimizer(self.supernet, cfg.peak_alpha_lr)
        self.window = local_window(self.supernet.spec.img_size)
        self.macs_cost = MacsCost(self.supernet.spec)
        self.generator = torch.Generator()
        if cfg.alpha_init == "target":
            self.start_at_target()

    @torch.no_grad()
    def start_at_target(self) -> None:
        """Tilt every open alpha to ``-slope * width / widest`` with the one slope that puts E[cost] at the target.

        With alpha at zero the expected cost starts wherever uniform p puts it (44% of the dense MACs for the
        default model), so the budget term first pushes every module the same way, and a module the loss does
        not pull on (a dead one) moves fastest: Adam's steps are largest for a gradient of constant sign.
        E[cost] falls as the slope grows, so a bisection finds it (docs/method.md).
        """
        cost, target = self.primary
        masks = [m for m in self.supernet.masks() if not m.final and m.alpha is not None]
        shapes = [m.widths() / m.widths().max() for m in masks]

        def expected(slope: float) -> float:
            for mask, shape in zip(masks, shapes, strict=True):
                mask.alpha.copy_(-slope * shape)
            return float(cost.expected(self.supernet))

        low, high = -30.0, 30.0
        if expected(low) <= target or expected(high) >= target:
            expected(low if expected(low) <= target else high)  # out of reach: the extreme closest to it
            return
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if expected(mid) > target else (low, mid)
        expected((low + high) / 2)

    # -- schedules ------------------------------------------------------------------------------------------
    def warm(self, t: float) -> float:
        """Warm-up progress in [0, 1] at fractional epoch ``t``."""
        w = self.config.warmup_epochs
        return 1.0 if w <= 0 else min(1.0, t / w)

    def lam(self, t: float) -> float:
        """lambda(t): linear from lambda_start to lambda_end over the warm-up, then constant."""
        c = self.config
        return c.lambda_start + (c.lambda_end - c.lambda_start) * self.warm(t)

    def mask_ratio(self, t: float) -> float:
        """PMIM mask ratio: linear from mask_ratio_start to mask_ratio_end over the warm-up."""
        c = self.config
        return c.mask_ratio_start + (c.mask_ratio_end - c.mask_ratio_start) * self.warm(t)

    def alpha_lr(self, step: int) -> float:
        """Alpha's lr at global ``step``: linear warm-up over the warm-up epochs to the peak, then cosine."""
        cfg = self.config
        total = cfg.epochs * self.steps_per_epoch
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        return cosine_lr(step, total, warmup, cfg.peak_alpha_lr, min(cfg.min_lr, cfg.peak_alpha_lr))

    def set_lr(self, step: int) -> None:
        """Cosine lr of weights and decoder, warm-up + cosine lr of alpha, at global ``step``."""
        total = self.config.epochs * self.steps_per_epoch
        for opt, base in ((self.opt_w, self.config.lr), (self.opt_d, self.config.decoder_lr)):
            lr = cosine_lr(step, total, 0, base, min(self.config.min_lr, base))
            for group in opt.param_groups:
                group["lr"] = lr
        if self.opt_a is not None:
            for group in self.opt_a.param_groups:
                group["lr"] = self.alpha_lr(step)

    def start_epoch(self, epoch: int) -> None:
        """Reseed the global RNG and the PMIM mask generator from (seed, epoch, rank)."""
        torch.manual_seed(self.config.seed * 100003 + epoch)
        self.generator.manual_seed(self.config.seed * 100003 + epoch * 1009 + rank() + 1)

    # -- one step -------------------------------------------------------------------------------------------
    def losses(self, x: torch.Tensor, y: torch.Tensor, t: float) -> dict[str, torch.Tensor]:
        """Forward pass and every loss term at fractional epoch ``t``; key ``loss`` is their sum."""
        cfg, net = self.config, self.supernet
        net.lam = self.lam(t)
        use_mim = cfg.pmim and not net.all_final
        token_mask = None
        if use_mim:
            token_mask = random_token_mask(x.shape[0], net.spec.num_patches, self.mask_ratio(t), self.generator)
            token_mask = token_mask.to(x.device)
        feats = net.forward_features(x, token_mask)
        logits = net.forward_head(feats)
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(x)
            ce = kd_loss(logits, target, y, DistillConfig(label_smoothing=cfg.label_smoothing))
        else:
            ce = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        out = {"ce": ce}
        loss = ce
        if use_mim:
            recon = net.reconstruct(self.decoder, feats)
            mim = mim_loss(recon, local_normalize(x, self.window), token_mask, net.spec.patch_size)
            loss = loss + (ce.detach() / mim.detach().clamp_min(1e-8)) * mim
            out["mim"] = mim
        arch = self.arch_losses()
        out.update(arch, loss=loss + arch["onehot"] + arch["budget"].to(x.device))
        return out

    def arch_losses(self) -> dict[str, torch.Tensor]:
        """The terms on alpha alone: one-hot losses (with the score L1) and the budget (FLOPs and/or latency).

        ``budget`` is their sum; ``soft_macs`` (and ``soft_ms`` with a latency target) the expected cost.
        """
        cfg, net = self.config, self.supernet
        weights = {"embed": cfg.c_embed, "attn": cfg.c_attn, "mlp": cfg.c_mlp}
        onehot = sum(cfg.w_onehot * module_onehot_loss(m, weights[m.kind]) for m in net.masks())
        soft = net.soft_macs()
        soft_value = float(soft.detach() if torch.is_tensor(soft) else soft)
        terms = {"onehot": onehot, "soft_macs": torch.as_tensor(soft_value)}
        budget = torch.zeros(())
        if self.target_macs is not None:
            terms["flops"] = cfg.w_flops * budget_loss(soft, self.target_macs, self.dense_macs)
            budget = budget + terms["flops"]
        if self.latency is not None:
            cost, target = self.latency
            expected = cost.expected(net)
            terms["latency"] = cfg.w_latency * budget_loss(expected, target, cost.dense)
            terms["soft_ms"] = expected.detach()
            budget = budget + terms["latency"]
        terms["budget"] = budget
        return terms

    @property
    def primary(self) -> tuple[Cost, float]:
        """The budget rounds and finalisation meet: latency when targeted, else MACs."""
        if self.latency is not None:
            return self.latency
        assert self.target_macs is not None
        return self.macs_cost, float(self.target_macs)

    def step(self, x: torch.Tensor, y: torch.Tensor, step: int, t: float) -> dict[str, float]:
        """One optimisation step; returns the loss terms as floats."""
        opts = [o for o in (self.opt_w, self.opt_a, self.opt_d) if o is not None]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        terms = self.losses(x, y, t)
        terms["loss"].backward()
        self._average_grads(opts)
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.supernet.model.parameters(), self.config.grad_clip)
        self.set_lr(step)
        for opt in opts:
            opt.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def _average_grads(self, opts: list[torch.optim.Optimizer]) -> None:
        if world_size() == 1:
            return
        params = [p for o in opts for g in o.param_groups for p in g["params"] if p.grad is not None]
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        all_reduce_mean_(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def prune(self, step: int, t: float) -> list[dict[str, Any]]:
        """A hard-pruning round after global ``step``; logs it, rebuilds the alpha optimizer, syncs ranks.

        Returns the per-module changes (``pruning.prune_round``); a round that changed something is appended to
        ``prune_log`` with the step, the epoch, the changes, the modules that became final and the alive
        candidate count of every module.
        """
        changed = prune_round(self.supernet, self.config.prune_threshold, self.lam(t), *self.primary)
        if changed:
            self.opt_a = make_alpha_optimizer(self.supernet, self.alpha_lr(step), self.opt_a)
            sync_search_state(self.supernet)
            self.prune_log.append(
                {
                    "step": step + 1,
                    "epoch": round(t, 4),
                    "changes": changed,
                    "became_final": [c["module"] for c in changed if c["final"]],
                    "alive": {m.name: len(m.candidates) for m in self.supernet.masks()},
                }
            )
        return changed

    @property
    def finalize_step(self) -> int:
        """The global step after which the open modules are finalised jointly (``finalize_at``)."""
        total = self.config.epochs * self.steps_per_epoch
        return round(self.config.finalize_at * total) if self.config.finalize_at > 0 else 0

    def choose_open(self, lam: float) -> list[str]:
        """Finalise every open module at once (the joint choice); return the names of those that were open.

        ``choose_by: loss`` takes the combination with the lowest held-out loss (``select.choose_by_loss``, its
        evaluated candidates kept in ``selection``), ``logp`` the most probable one (``finalize.py``).
        """
        net = self.supernet
        opened = [m.name for m in net.masks() if not m.final]
        if not opened:
            return []
        if self.config.choose_by == "loss" and self.held is not None:
            cfg = self.config
            picks, self.selection = choose_by_loss(net, *self.primary, self.held, lam, cfg.select_per_width,
                                                   cfg.select_moves)  # fmt: skip
        else:
            _, picks = closest_combination(net, *self.primary)
        for mask in net.masks():
            if not mask.final:
                mask.choose(picks[mask.name], lam)
        return opened

    def finalize_open(self, step: int, t: float) -> list[str]:
        """The joint choice at the deadline (``choose_open``); logged as a joint round.

        ``step`` -1 is before the first step (``finalize_at: 0``): the choice is made on the dense weights with
        lambda 0, so the kept units keep their full weight, as the slice of the dense model would.
        """
        opened = self.choose_open(0.0 if step < 0 else self.lam(t))
        if opened:
            self.opt_a = make_alpha_optimizer(self.supernet, self.alpha_lr(step), self.opt_a)
            sync_search_state(self.supernet)
            self.prune_log.append(
                {
                    "step": step + 1,
                    "epoch": round(t, 4),
                    "joint": True,
                    "changes": [],
                    "became_final": opened,
                    "alive": {m.name: len(m.candidates) for m in self.supernet.masks()},
                }
            )
        return opened

    # -- checkpoint -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain data and tensors only (loads with ``weights_only=True``)."""
        return {
            "epoch": self.epoch,
            "masks": [m.search_state() for m in self.supernet.masks()],
            "supernet": self.supernet.state_dict(),
            "decoder": self.decoder.state_dict(),
            "opt_w": self.opt_w.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "opt_a": None if self.opt_a is None else self.opt_a.state_dict(),
            "rng": torch.get_rng_state(),
            "history": self.history,
            "prune_log": self.prune_log,
            "selection": self.selection,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint written by ``state_dict`` (masks first, so alphas have the right sizes)."""
        for mask, ms in zip(self.supernet.masks(), state["masks"], strict=True):
            mask.load_search_state(ms)
        self.supernet.load_state_dict(state["supernet"])
        self.supernet.refresh()
        self.decoder.load_state_dict(state["decoder"])
        self.opt_w.load_state_dict(state["opt_w"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_a = make_alpha_optimizer(self.supernet, self.config.peak_alpha_lr)
        if self.opt_a is not None and state["opt_a"] is not None:
            self.opt_a.load_state_dict(state["opt_a"])
        torch.set_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.prune_log = list(state.get("prune_log", []))
        self.selection = list(state.get("selection", []))

    def save(self, path: Path, inputs_hash: str) -> None:
        """Write the resume checkpoint atomically."""
        blob = {"inputs_hash": inputs_hash, **self.state_dict()}
        atomic_write_with(path, lambda tmp: torch.save(blob, tmp))

    def load(self, path: Path, inputs_hash: str) -> None:
        """Read the resume checkpoint; one line if it is corrupt or from different inputs."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for one cause: an unreadable file
            raise ArtifactError(f"cannot read search resume state {path}: {exc}") from exc
        if blob.get("inputs_hash") != inputs_hash:
            raise ArtifactError(f"{path} was written for different inputs or settings; run without --resume")
        self.load_state_dict(blob)

    def broadcast_start(self) -> None:
        """Make every rank start from rank 0's weights, scores, alphas and decoder."""
        for tensor in [*self.supernet.parameters(), *self.decoder.parameters()]:
            broadcast_(tensor.data)
