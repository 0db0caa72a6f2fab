"""Plots of ``compare`` and ``sweep``: top-1 against measured ORT CPU latency, one point (or line) per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ofb_deploy.compare.results import CompareResult, DenseResult, SweepResult
from ofb_deploy.utils.plots import pyplot, save_figure

COLORS = {"ofb": "#d62728", "uniform-keep-embed": "#1f77b4", "uniform": "#17becf", "torch-pruning": "#2ca02c",
          "scratch": "#9467bd", "torch-pruning-taylor": "#8c564b"}  # fmt: skip


def _batch(result: CompareResult | SweepResult) -> str:
    """The batch the plots use: the largest one timed."""
    return str(max(result.latency.batches))


def _dense_star(ax: Any, dense: DenseResult, batch: str) -> None:
    if dense.top1 is not None:
        ax.scatter([dense.latency_ms[batch]], [dense.top1], marker="*", s=120, color="black", label="dense")


def plot_methods(result: CompareResult, path: Path) -> None:
    """``RunDir.compare_plot``: each method's mean top-1 (min..max over seeds) against its latency; dense: a star.

    Args:
        result: the compare results.
        path: the PNG to write.
    """
    plt = pyplot()
    batch = _batch(result)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, m in result.methods.items():
        ms, acc = m.latency_ms[batch], m.top1_mean
        err = [[acc - m.top1_min], [m.top1_max - acc]]
        ax.errorbar([ms], [acc], yerr=err, fmt="o", capsize=3, color=COLORS.get(method), label=method)
    _dense_star(ax, result.dense, batch)
    seeds = ", ".join(result.methods["ofb"].seeds)
    ax.set_title(f"equal MACs, {result.budget.epochs} epochs each, seeds {seeds}", fontsize=9)
    ax.set_xlabel(f"ORT CPU median latency at batch {batch} (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_pareto(result: SweepResult, path: Path) -> None:
    """``RunDir.sweep_plot``: top-1 against latency per method over the FLOPs targets (one line per method).

    Args:
        result: the sweep results.
        path: the PNG to write.
    """
    plt = pyplot()
    batch = _batch(result)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in result.methods:
        rows = sorted((r for r in result.rows if r.method == method), key=lambda r: r.latency_ms[batch])
        ax.plot([r.latency_ms[batch] for r in rows], [r.top1 for r in rows], "-o", color=COLORS.get(method),
                label=method)  # fmt: skip
        for r in rows:
            ax.annotate(f"{100 * r.flops_ratio:.0f}%", (r.latency_ms[batch], r.top1), fontsize=7,
                        xytext=(4, -10 if method == "ofb" else 4), textcoords="offset points")  # fmt: skip
    _dense_star(ax, result.dense, batch)
    ax.set_xlabel(f"ORT CPU median latency at batch {batch} (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
