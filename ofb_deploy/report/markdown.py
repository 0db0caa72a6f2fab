"""The Markdown report: the human view of the report JSON (main table, architecture, accuracy, latency, speedups)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ofb_deploy.compare.results import EqualLatency, PairedDifference
from ofb_deploy.models.arch_spec import ArchSpec
from ofb_deploy.report.results import Report

PRIMARY_BACKENDS = ("ort-cpu", "tensorrt", "ort-cuda", "torch")


def primary_key(doc: Report) -> str | None:
    """The backend key the main table shows: ONNX Runtime CPU when measured, else the first measured."""
    keys = list(doc.speedup)
    for key in PRIMARY_BACKENDS:
        if key in keys:
            return key
    return keys[0] if keys else None


def _fmt(value: Any, spec: str = ".2f", empty: str = "-") -> str:
    if value is None:
        return empty
    return format(value, spec) if isinstance(value, int | float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def main_table(doc: Report | Mapping[str, Any]) -> list[str]:
    """Dense vs subnet: MACs, params, accuracy, and median latency and speedup on the primary backend.

    Args:
        doc: the report (or its JSON, as ``render_report`` returns it and the CLI reads it back).
    """
    if not isinstance(doc, Report):
        doc = Report.parse(doc, "report")
    key = primary_key(doc)
    batches = sorted(doc.dense.latency.get(key, {}), key=int) if key else []
    header = ["model", "MACs (M)", "% of dense", "params (M)", "top-1 %", "top-5 %"]
    header += [f"{key} p50 ms b{b}" for b in batches]
    rows = []
    for role, m in (("dense", doc.dense), ("subnet", doc.subnet)):
        row = [role, _fmt(m.flops / 1e6), _fmt(100 * m.flops / doc.dense.flops, ".1f")]
        row += [_fmt(m.params / 1e6, ".3f"), _fmt(m.top1), _fmt(m.top5)]
        row += [_fmt(m.latency[key][b].p50_ms, ".3f") for b in batches]
        rows.append(row)
    speed = doc.speedup.get(key, {}) if key else {}
    change = -doc.top1_drop if doc.top1_drop is not None else None
    rows.append(["subnet vs dense", "", "", "", _fmt(change, "+.2f"), ""])
    rows[-1] += [f"{speed[b]:.2f}x" if b in speed else "-" for b in batches]
    return _table(header, rows)


def arch_table(doc: Report) -> list[str]:
    """Per block: heads, head dim and MLP width, dense -> subnet."""
    d, s = doc.dense.arch, doc.subnet.arch
    rows = []
    for i in range(d.depth):
        rows.append(
            [
                str(i),
                f"{d.num_heads[i]} -> {s.num_heads[i]}",
                f"{d.head_dim[i]} -> {s.head_dim[i]}",
                f"{d.num_heads[i] * d.head_dim[i]} -> {s.num_heads[i] * s.head_dim[i]}",
                f"{d.mlp_hidden[i]} -> {s.mlp_hidden[i]}",
            ]
        )
    lines = [f"{embed_label(d)}: {embed_widths(d)} -> {embed_widths(s)}", ""]
    return lines + _table(["block", "heads", "head dim", "attention width", "MLP hidden"], rows)


def embed_label(arch: ArchSpec) -> str:
    """What the residual widths are called: one embedding width (ViT) or one per stage (Swin)."""
    return "Embedding width per stage" if arch.family == "swin" else "Embedding width"


def embed_widths(arch: ArchSpec) -> str:
    """``384`` for a ViT, ``96-192-384-768`` for a Swin's stages."""
    return "-".join(map(str, arch.stage_widths))


def accuracy_table(doc: Report) -> list[str]:
    """Top-1/top-5 of the PyTorch models and every engine, with agreement against PyTorch."""
    rows = [
        [f"torch {r}", "torch", "fp32", _fmt(m.top1), _fmt(m.top5), "100.00", "0"]
        for r, m in (("dense", doc.dense), ("subnet", doc.subnet))
    ]
    if doc.subnet.sliced_top1 is not None:
        rows.append(["torch subnet before fine-tuning", "torch", "fp32", _fmt(doc.subnet.sliced_top1)] + ["-"] * 3)
    for e in doc.engines:
        agree = e.top1_agreement
        rows.append(
            [
                e.role,
                e.backend,
                e.precision,
                _fmt(e.top1),
                _fmt(e.top5),
                _fmt(100 * agree if agree is not None else None),
                _fmt(e.max_abs, ".2e") if e.error is None else f"error: {e.error}",
            ]
        )
    return _table(["model", "backend", "precision", "top-1 %", "top-5 %", "agreement %", "max abs err"], rows)


def latency_tables(doc: Report) -> list[str]:
    """Per backend: percentiles and throughput of both roles at every batch, then the speedups."""
    lines: list[str] = []
    for key in doc.dense.latency:
        rows = []
        for batch in sorted(doc.dense.latency[key], key=int):
            for role, m in (("dense", doc.dense), ("subnet", doc.subnet)):
                r = m.latency.get(key, {}).get(batch)
                if r is None:
                    continue
                rows.append(
                    [batch, role]
                    + [_fmt(v, ".3f") for v in (r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.mean_ms)]
                    + [_fmt(r.throughput, ".1f")]
                )
        lines += (
            [f"### {key}", ""]
            + _table(["batch", "model", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "mean ms", "img/s"], rows)
            + [""]
        )
    return lines


def speedup_table(doc: Report) -> list[str]:
    """Speedup and speedup / FLOPs ratio per backend and batch."""
    rows = []
    for key, per_batch in doc.speedup.items():
        for batch in sorted(per_batch, key=int):
            per_flops = doc.speedup_per_flops.get(key, {}).get(batch)
            rows.append([key, batch, f"{per_batch[batch]:.2f}x", _fmt(per_flops)])
    ratio = doc.dense.flops / doc.subnet.flops
    lines = [
        f"FLOPs ratio dense / subnet: {ratio:.2f}x (speedup / FLOPs ratio = 1.00 would turn the whole cut into time).",
        "",
    ]
    return lines + _table(["backend", "batch", "speedup", "speedup / FLOPs ratio"], rows)


def targets_lines(doc: Report) -> list[str]:
    """Pass/fail of each target from the run config."""
    rows = [
        [name, _fmt(c.value, ".3f"), _fmt(c.limit), "pass" if c.passed else "FAIL"] for name, c in doc.targets.items()
    ]
    return _table(["target", "value", "limit", "result"], rows) if rows else ["No targets in the run config."]


def stages_lines(doc: Report) -> list[str]:
    """Wall time per stage of `ofb-deploy run` (stages run on their own have none)."""
    timed = {k: v for k, v in doc.stages.items() if v is not None}
    if not timed:
        return []
    parts = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in timed.items())
    return [f"Stage wall times: {parts} (total {sum(timed.values()):.0f} s, report not included).", ""]


def machine_lines(doc: Report) -> list[str]:
    """CPU, GPU and library versions the numbers were measured with."""
    m = doc.machine
    libs = m.libraries
    lines = [f"- CPU: {m.cpu} ({_fmt(m.cpu_count, 'd', '?')} logical cores, {_fmt(m.cpu_affinity, 'd', '?')} usable)"]
    lines.append(f"- GPU: {m.gpu}" + (f", driver {m.gpu_driver}" if m.gpu_driver else ""))
    wanted = ("python", "torch", "onnxruntime", "onnx", "timm", "tensorrt", "tensorrt_rtx")
    lines.append("- libraries: " + ", ".join(f"{k} {libs[k]}" for k in wanted if k in libs))
    return lines


def compare_lines(doc: Report) -> list[str]:
    """The ``ofb-deploy compare`` table (every method at OFB's MACs and epochs) and its plot."""
    c = doc.compare
    if not c:
        return []
    batches = [str(b) for b in c.batches]
    seeds = sorted(c.methods["ofb"].top1)
    header = ["method", "top-1 mean %", *[f"seed {s}" for s in seeds], "MMACs", "params (k)"]
    header += [f"ORT CPU ms b{b}" for b in batches]
    dense = c.dense
    rows = [["dense", _fmt(dense.top1), *[""] * len(seeds), _fmt(dense.flops / 1e6), _fmt(dense.params / 1e3, ".1f"),
             *[_fmt(dense.latency_ms[b], ".3f") for b in batches]]]  # fmt: skip
    for name, m in c.methods.items():
        rows.append([name, _fmt(m.top1_mean), *[_fmt(m.top1.get(s)) for s in seeds], _fmt(m.flops / 1e6),
                     _fmt(m.params / 1e3, ".1f"), *[_fmt(m.latency_ms[b], ".3f") for b in batches]])  # fmt: skip
    checks = c.checks
    beats = ", ".join(f"{m}: {'yes' if ok else 'no'}" for m, ok in checks.ofb_at_or_above.items())
    held = " (ofb-latency: at its measured latency)" if "ofb-latency" in c.methods else ""
    lines = [f"Every method starts from the run's dense checkpoint, is held at the OFB subnet's MACs{held} and gets "
             f"{c.budget.epochs} epochs ({c.budget.search_passes:g} of OFB's are its search); "
             f"latency measured interleaved in one process.", ""]  # fmt: skip
    lines += _table(header, rows)
    lines += ["", f"Equal MACs (1%): {checks.equal_macs_within_1pct}; equal epochs: {checks.equal_epochs}; "
              f"OFB at or above (mean paired difference >= 0): {beats}.", ""]  # fmt: skip
    lines += _paired_lines(checks.paired)
    if checks.equal_latency:
        lines += _equal_latency_lines(checks.equal_latency)
    if c.plot:
        lines += [f"![compare](../compare/{c.plot})", ""]
    return lines


def _paired_lines(paired: dict[str, PairedDifference]) -> list[str]:
    """OFB minus each method, seed by seed, with the mean and its standard error."""
    if not paired:
        return []
    header = ["OFB minus", "per seed (points)", "mean", "SE", "OFB wins"]
    rows = []
    for method, p in paired.items():
        per_seed = ", ".join(f"s{s}: {d:+.2f}" for s, d in p.seeds.items())
        mean = "-" if p.mean is None else f"{p.mean:+.2f}"
        rows.append([method, per_seed, mean, "-" if p.se is None else f"{p.se:.2f}", f"{p.wins}/{p.n}"])
    return [*_table(header, rows), ""]


def _equal_latency_lines(check: EqualLatency) -> list[str]:
    """``ofb-latency`` (searched at the OFB subnet's measured latency) against OFB, seed by seed."""
    per_seed = "; ".join(
        f"seed {seed}: latency {s.latency_ratio:.3f}x OFB's, top-1 {s.top1:.2f} vs {s.ofb_top1:.2f}"
        for seed, s in check.seeds.items()
    )
    verdict = f"within 10%: {check.within_10pct}; top-1 at or above OFB at every seed: {check.top1_at_or_above_ofb}"
    return [f"Equal latency (ofb-latency, ORT CPU batch {check.batch}): {per_seed}; {verdict}.", ""]


def sweep_lines(doc: Report) -> list[str]:
    """The ``ofb-deploy sweep`` table (OFB and keep-embed uniform widths per FLOPs target) and its Pareto plot."""
    w = doc.sweep
    if not w:
        return []
    batches = [str(b) for b in w.batches]
    header = ["target", "method", "% of dense MACs", "top-1 %", *[f"ORT CPU ms b{b}" for b in batches]]
    rows = [[r.target, r.method, _fmt(100 * r.flops_ratio, ".1f"), _fmt(r.top1),
             *[_fmt(r.latency_ms[b], ".3f") for b in batches]] for r in w.rows]  # fmt: skip
    lines = [f"Each method gets {w.budget_epochs} epochs from the same dense checkpoint.", ""]
    lines += _table(header, rows) + [""]
    if w.plot:
        lines += [f"![sweep](../sweep/{w.plot})", ""]
    return lines


def _search_lines(doc: Report) -> list[str]:
    """The search's target and how it was met."""
    search = doc.search
    if not search:
        return []
    target = search.target_flops
    pct = 100 * target / search.dense_flops if target and search.dense_flops else None
    joint = search.unconverged
    # "unconverged" modules were not settled by pruning rounds but chosen jointly, closest to the target
    how = (f"{len(joint)} module(s) chosen jointly at the deadline, closest to the target ({', '.join(joint)})"
           if joint else "every module settled by the pruning rounds")  # fmt: skip
    return [f"Search target: {_fmt(pct, '.0f')}% of dense MACs ({_fmt(search.flops, ',')} of "
            f"{_fmt(search.dense_flops, ',')} MACs reached); {how}.", ""]  # fmt: skip


def _prediction_lines(doc: Report) -> list[str]:
    """The search's latency prediction against validate's measurement."""
    pred = doc.latency_prediction
    if not pred:
        return []
    if pred.note:
        measured = f"; not compared: {pred.note}."
    elif pred.measured_ms is None:
        measured = f"; not measured: validate did not time {pred.backend} fp32 at batch {pred.batch}."
    else:
        measured = f", measured {pred.measured_ms:.3f} ms (error {_fmt(pred.error_pct, '+.1f')}%)."
    lines = ["## Latency target", "", f"Searched for {pred.target_ms:.3f} ms on {pred.backend} at batch {pred.batch} "
             f"(table {pred.table_digest}): predicted {pred.predicted_ms:.3f} ms" + measured, ""]  # fmt: skip
    if pred.measured_share is not None:
        lines += [f"As a share of the dense model timed with it: predicted {pred.predicted_share:.3f}, measured "
                  f"{pred.measured_share:.3f} (error {_fmt(pred.share_error_pct, '+.1f')}%); the dense "
                  f"model ran at {pred.drift:.2f}x its predicted time (the machine's drift since profiling).",
                  ""]  # fmt: skip
    return lines


def render_markdown(doc: Report, images: list[str]) -> str:
    """The whole Markdown report.

    Args:
        doc: the report.
        images: PNG file names in the report folder to embed.
    """
    data = doc.data
    lines = [f"# ofb-deploy report: {doc.base_model} on {data.get('name', '?')}", ""]
    lines += [f"Run: `{doc.run_dir}`, {data.get('val_samples', '?')} validation images, {doc.created_at}.", ""]
    lines += _search_lines(doc)
    lines += ["## Summary", ""] + main_table(doc) + [""]
    lines += stages_lines(doc)
    lines += ["## Targets", ""] + targets_lines(doc) + [""]
    lines += ["## Architecture per block", ""] + arch_table(doc) + [""]
    lines += ["## Accuracy", ""] + accuracy_table(doc) + [""]
    lines += ["## Speedups", ""] + speedup_table(doc) + [""]
    lines += ["## Latency", ""] + latency_tables(doc)
    lines += _prediction_lines(doc)
    if doc.compare:
        lines += ["## OFB against baselines (ofb-deploy compare)", ""] + compare_lines(doc)
    if doc.sweep:
        lines += ["## FLOPs sweep (ofb-deploy sweep)", ""] + sweep_lines(doc)
    if doc.errors:
        lines += ["## Not measured", ""] + [f"- {k}: {v}" for k, v in doc.errors.items()] + [""]
    lines += ["## Machine", ""] + machine_lines(doc) + [""]
    if images:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    return "\n".join(lines)
