"""PNG plots of a report (matplotlib, Agg backend: no display needed).

``artifacts.REPORT_PLOTS``, in order: attention and MLP widths per block, dense vs subnet; median latency against
batch size per backend; top-1 against per-image latency at the largest batch for dense, subnet and their INT8
(and other precision) engines.
"""

from __future__ import annotations

from pathlib import Path

from ofb_deploy.artifacts import REPORT_PLOTS, RunDir
from ofb_deploy.report.markdown import embed_label, embed_widths
from ofb_deploy.report.results import Report
from ofb_deploy.utils.plots import pyplot, save_figure


def plot_widths(doc: Report, path: Path) -> None:
    """Bars of attention width (heads x head dim) and MLP hidden width per block, dense vs subnet."""
    plt = pyplot()
    d, s = doc.dense.arch, doc.subnet.arch
    blocks = list(range(d.depth))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    series = (
        (
            "attention width",
            [h * w for h, w in zip(d.num_heads, d.head_dim, strict=True)],
            [h * w for h, w in zip(s.num_heads, s.head_dim, strict=True)],
        ),
        ("MLP hidden", d.mlp_hidden, s.mlp_hidden),
    )
    for ax, (title, dense, sub) in zip(axes, series, strict=True):
        ax.bar([b - 0.2 for b in blocks], dense, width=0.4, label="dense", color="#bbbbbb")
        ax.bar([b + 0.2 for b in blocks], sub, width=0.4, label="subnet", color="#3a76af")
        ax.set_title(title)
        ax.set_xlabel("block")
        ax.set_xticks(blocks)
        ax.set_ylim(0, 1.3 * max(dense))  # headroom so the legend never covers a bar
        ax.legend(loc="upper right", fontsize=8, ncols=2)
    fig.suptitle(f"{embed_label(d).lower()} {embed_widths(d)} -> {embed_widths(s)}")
    save_figure(fig, path)


def plot_latency(doc: Report, path: Path) -> None:
    """Median latency vs batch size, one colour per backend, dense dashed and subnet solid (log-log)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(doc.dense.latency):
        for role, model, style in (("dense", doc.dense, "--"), ("subnet", doc.subnet, "-")):
            per_batch = model.latency.get(key, {})
            batches = sorted(per_batch, key=int)
            ax.plot(
                [int(b) for b in batches],
                [per_batch[b].p50_ms for b in batches],
                style,
                marker="o",
                color=colors[i % len(colors)],
                label=f"{key} {role}",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("median latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def accuracy_points(doc: Report) -> list[tuple[str, float, float]]:
    """``(label, ms per image, top-1)`` for each role and backend key measured at its largest batch."""
    roles = (("dense", doc.dense), ("subnet", doc.subnet))
    top1 = {("torch", role): model.top1 for role, model in roles}
    for e in doc.engines:
        if e.top1 is not None:
            top1[(e.key, e.role)] = e.top1
    points = []
    for role, model in roles:
        for key, per_batch in model.latency.items():
            if top1.get((key, role)) is None or not per_batch:
                continue
            batch = max(per_batch, key=int)
            points.append((f"{role} {key}", per_batch[batch].p50_ms / int(batch), top1[(key, role)]))
    return points


def plot_accuracy(doc: Report, path: Path) -> None:
    """Top-1 against per-image latency: dense, subnet and their other-precision (INT8) engines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, ms, acc in accuracy_points(doc):
        marker = "s" if label.startswith("dense") else "o"
        ax.scatter([ms], [acc], marker=marker, s=40)
        ax.annotate(label, (ms, acc), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("median latency per image at the largest batch (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)


def draw_plots(doc: Report, run_dir: RunDir) -> list[str]:
    """Draw every plot that has data into the run's report folder; return the file names written.

    Args:
        doc: the report document.
        run_dir: the run (``RunDir.report_plot``).
    """
    widths, latency, accuracy = REPORT_PLOTS
    drawn = [widths]
    plot_widths(doc, run_dir.report_plot(widths))
    if doc.dense.latency:
        plot_latency(doc, run_dir.report_plot(latency))
        drawn.append(latency)
        if accuracy_points(doc):
            plot_accuracy(doc, run_dir.report_plot(accuracy))
            drawn.append(accuracy)
    return drawn
