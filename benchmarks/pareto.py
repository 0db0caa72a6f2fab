"""The Pareto study of issue 18: OFB against uniform widths at several MACs targets and seeds, paired.

    python benchmarks/pareto.py                       # everything, one process (hours of CPU)
    python benchmarks/pareto.py --shard 0/2 &         # two one-thread jobs side by side
    python benchmarks/pareto.py --shard 1/2 &
    python benchmarks/pareto.py --collect             # table and plot from what is finished

Every method starts from the shipped converged checkpoint, on the same width grid (``GRID``: head dim 4 is in
it, which keep-embed uniform widths need at 25%), with the same post-training epochs and fine-tune recipe, and
is held within 1% of the OFB subnet's MACs at that target and seed (``ofb-deploy compare``'s rules: the
compare library makes every model). Each finished (target, method, seed) is merged at once into
``benchmarks/results/pareto.json``, which is committed: a later session skips what it holds, so the study
resumes across sessions; within a session a killed method resumes from its last epoch.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofb_deploy.artifacts import RunDir  # noqa: E402
from ofb_deploy.compare.methods import make_method  # noqa: E402
from ofb_deploy.compare.recipe import read_recipe  # noqa: E402
from ofb_deploy.compare.stats import paired_differences  # noqa: E402
from ofb_deploy.utils.io import atomic_write_json, read_json  # noqa: E402

log = logging.getLogger("pareto")

# the width grid every method uses: head dims {4, 8, 12, 16}, embed 24..64 step 4, MLP 8..256 step 8
GRID = ["search.align=4", "search.embed_min=0.375"]
PLAN = {"0.25": (0, 1, 2), "0.35": (0, 1), "0.5": (0, 1, 2)}
METHODS = ("ofb", "uniform-keep-embed", "uniform")
EXTRA = {"torch-pruning": (0,), "scratch": (0,)}  # seed 0 only
KEYS = {"uniform-keep-embed": "uniform_keep_embed", "torch-pruning": "torch_pruning"}  # pareto.json's spelling
OUT = ROOT / "benchmarks" / "results" / "pareto.json"


def key(method: str) -> str:
    return KEYS.get(method, method)


@contextmanager
def locked(path: Path):
    """An exclusive lock shared by the shards (held while the base run is made or the JSON is merged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_run(run_dir: Path, threads: int) -> RunDir:
    """The run every method takes its dense checkpoint, data and recipe from: the default preset on ``GRID``,
    searched at 50% (its own result is OFB at 0.5, seed 0)."""
    from ofb_deploy.pipeline.config import load_config
    from ofb_deploy.pipeline.run import run_pipeline

    with locked(run_dir / "base"):
        run = RunDir(run_dir, create=True)
        if not run.is_done("finetune"):
            sets = [*GRID, f"finetune.threads={threads}"]
            run_pipeline(load_config("default", sets=sets), out=run_dir, until_stage="finetune")
    return run


def merge(out: Path, target: str, method: str, seed: int, doc: dict) -> None:
    """Add one finished result to the study's JSON (under the lock, atomically)."""
    with locked(out):
        study = read_json(out) if out.is_file() else {"targets": {}}
        entry = {"top1": doc["top1"], "macs": doc["flops"], "arch": doc["arch"], "epochs": doc["epochs"]}
        if doc.get("seconds") is not None:
            entry["seconds"] = doc["seconds"]
        study["targets"].setdefault(target, {}).setdefault(key(method), {})[str(seed)] = entry
        atomic_write_json(out, study)


def done(out: Path, target: str, method: str, seed: int) -> bool:
    if not out.is_file():
        return False
    return str(seed) in read_json(out).get("targets", {}).get(target, {}).get(key(method), {})


def work(plan: dict[str, tuple[int, ...]]) -> list[tuple[str, int, list[str]]]:
    """(target, seed, methods) groups; OFB first in each (the baselines are held at its MACs)."""
    groups = []
    for target, seeds in plan.items():
        for seed in seeds:
            extra = [m for m, only in EXTRA.items() if seed in only]
            groups.append((target, seed, [*METHODS, *extra]))
    return groups


def run_group(run: RunDir, target: str, seed: int, methods: list[str], out: Path) -> None:
    recipe = read_recipe(run)
    folder = run.root / "pareto" / f"target{target}" / f"seed{seed}"
    ofb = make_method(recipe, folder / "ofb", "ofb", seed, None, target)
    if not done(out, target, "ofb", seed):
        merge(out, target, "ofb", seed, ofb)
    for method in methods[1:]:
        if done(out, target, method, seed):
            continue
        started = time.time()
        doc = make_method(recipe, folder / method, method, seed, ofb)
        merge(out, target, method, seed, doc)
        log.info("%s seed %d %s: top-1 %.2f (%.0f s)", target, seed, method, doc["top1"], time.time() - started)


def _top1(seeds: dict) -> dict:
    return {s: r["top1"] for s, r in seeds.items()}


def summary(study: dict) -> dict:
    """Per target: per method the mean top-1 and MACs, and OFB minus each baseline paired by seed."""
    out = {}
    for target, methods in sorted(study["targets"].items(), key=lambda kv: float(kv[0])):
        ofb = {s: r["top1"] for s, r in methods.get("ofb", {}).items()}
        rows = {}
        for method, seeds in methods.items():
            top1 = [r["top1"] for r in seeds.values()]
            rows[method] = {
                "seeds": sorted(seeds, key=int),
                "top1_mean": round(sum(top1) / len(top1), 3),
                "macs_mean": round(sum(r["macs"] for r in seeds.values()) / len(seeds)),
                "paired_vs_ofb": None
                if method == "ofb"
                else paired_differences(ofb, {s: r["top1"] for s, r in seeds.items()}),
            }
        out[target] = rows
    return out


def markdown(study: dict, dense_macs: int) -> str:
    """The Pareto table of docs/results.md: per target and method, top-1 per seed and OFB's paired difference."""
    lines = [
        "| target | method | MACs (share) | top-1 per seed | mean | OFB - method (paired, mean ± SE) | OFB wins |",
        "|---|---|---|---|---|---|---|",
    ]
    for target, rows in summary(study).items():
        for method, row in rows.items():
            seeds = study["targets"][target][method]
            per_seed = ", ".join(f"s{s}: {seeds[s]['top1']:.2f}" for s in row["seeds"])
            share = f"{row['macs_mean'] / 1e6:.2f} M ({row['macs_mean'] / dense_macs:.1%})"
            paired = row["paired_vs_ofb"]
            if paired is None:
                diff, wins = "", ""
            else:
                se = "" if paired["se"] is None else f" ± {paired['se']:.2f}"
                diff, wins = f"{paired['mean']:+.2f}{se}", f"{paired['wins']}/{paired['n']}"
            lines.append(f"| {target} | {method} | {share} | {per_seed} | {row['top1_mean']:.2f} | {diff} | {wins} |")
    return "\n".join(lines) + "\n"


def plot(study: dict, dense: dict, path: Path) -> None:
    """Top-1 against MACs: every seed as a dot, the mean per target joined by a line, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = sorted({m for t in study["targets"].values() for m in t}, key=lambda m: (m != "ofb", m))
    for method in methods:
        xs, ys = [], []
        for target in sorted(study["targets"], key=float):
            seeds = study["targets"][target].get(method, {})
            if not seeds:
                continue
            macs = [r["macs"] / 1e6 for r in seeds.values()]
            top1 = [r["top1"] for r in seeds.values()]
            ax.scatter(macs, top1, s=12, alpha=0.5)
            xs.append(sum(macs) / len(macs))
            ys.append(sum(top1) / len(top1))
        ax.plot(xs, ys, marker="o", label=method, linewidth=2 if method == "ofb" else 1)
    ax.axhline(dense["top1"], color="grey", linestyle=":", label=f"dense ({dense['macs'] / 1e6:.1f} M MACs)")
    ax.set_xlabel("MACs per image (M)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("vit_fmnist_tiny: equal MACs and epochs, seeds as dots")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def collect(out: Path, run: RunDir) -> None:
    from ofb_deploy.compare.recipe import dense_top1
    from ofb_deploy.models import count_macs, load_model_dir

    study = read_json(out)
    recipe = read_recipe(run)
    dense = {"top1": dense_top1(recipe), "macs": count_macs(load_model_dir(run.dense_dir).spec).total}
    study["dense"] = dense
    study["grid"] = GRID
    study["budget_epochs"] = recipe.budget_epochs
    study["summary"] = summary(study)
    with locked(out):
        atomic_write_json(out, study)
    plot(study, dense, out.with_suffix(".png"))
    print(markdown(study, dense["macs"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "pareto")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th (target, seed) group")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collect", action="store_true", help="only write the summary, table and plot")
    parser.add_argument("--targets", default=",".join(PLAN), help="a subset of the plan's targets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # every stage's ``set_cpu_threads`` reads it
    index, count = (int(v) for v in args.shard.split("/"))
    run = base_run(args.run_dir, args.threads)
    if not args.collect:
        plan = {t: s for t, s in PLAN.items() if t in args.targets.split(",")}
        for i, (target, seed, methods) in enumerate(work(plan)):
            if i % count == index:
                run_group(run, target, seed, methods, args.out)
    if args.out.is_file():
        collect(args.out, run)


if __name__ == "__main__":
    main()
