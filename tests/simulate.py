"""Test helper: an alpha-only dry run of the search schedule: how the pruning rounds unfold without data or weights.

Only the terms that act on alpha without images run (the one-hot losses and the FLOPs loss), with the real
cadence, alpha lr schedule, guarded rounds and end-of-search choice. It takes a second and answers the
question a schedule change raises: do rounds remove candidates progressively, or does every module go final
at once? (With real data the cross-entropy also pulls on alpha, so this is the budget's side of the story.)
"""

from __future__ import annotations

from typing import Any

import torch

from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.models.flops import count_macs
from ofb_deploy.models.registry import build_model
from ofb_deploy.search.build import build_supernet
from ofb_deploy.search.config import SearchConfig
from ofb_deploy.search.finalize import finalize_closest
from ofb_deploy.search.loop import SearchState
from ofb_deploy.search.space import resolve_flops_target


def simulate_alpha(spec: ArchSpec, config: SearchConfig, steps_per_epoch: int) -> dict[str, Any]:
    """Run the alpha-only schedule of ``config`` on ``spec``; return the prune log and the final widths.

    Args:
        spec: the dense architecture.
        config: the search settings (target, epochs, cadence, alpha lr, ...).
        steps_per_epoch: optimisation steps per search epoch (training images / batch size).
    """
    torch.manual_seed(config.seed)
    net = build_supernet(build_model(spec), config.space())
    dense = count_macs(spec).total
    target = resolve_flops_target(config.target_flops, spec, config.space())
    state = SearchState(net, net.make_decoder(), config, target, dense, steps_per_epoch)
    for step in range(config.epochs * steps_per_epoch):
        t = step / steps_per_epoch
        net.lam = state.lam(t)
        if state.opt_a is not None:
            state.opt_a.zero_grad(set_to_none=True)
            terms = state.arch_losses()
            (terms["onehot"] + terms["budget"]).backward()
            state.set_lr(step)
            state.opt_a.step()
        if (step + 1) % config.prune_every == 0:
            state.prune(step, t)
        if step + 1 == state.finalize_step:
            state.finalize_open(step, t)
    opened = [n for r in state.prune_log if r.get("joint") for n in r["became_final"]]
    opened += finalize_closest(net, *state.primary, net.lam)
    return {
        "prune_log": state.prune_log,
        "finalised_at_end": opened,
        "target_flops": target,
        "flops": float(net.soft_macs()),
        "modules": {m.name: m.candidates[0] for m in net.masks()},
    }
