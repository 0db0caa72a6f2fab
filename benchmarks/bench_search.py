"""Benchmark of the OFB search: step cost against plain training, and the FLOPs-target error.

1. Time of one search step (bi-masks, PMIM, one-hot and FLOPs losses, three AdamW) against one plain training step
   (CE + AdamW) of the same dense model and batch; steps are interleaved and the medians compared (goal <= 1.3x).
   The search step is measured at its most expensive point: every unit alive and PMIM on.
2. A short search of ``test_vit`` on Fashion-MNIST to 50% FLOPs: the relative error of the result's FLOPs.

Writes ``benchmarks/results/search.json``. Usage: ``python benchmarks/bench_search.py [--model vit_fmnist_tiny]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ofb_deploy.artifacts import RunDir
from ofb_deploy.data import DataConfig
from ofb_deploy.models import count_macs, create_model, save_model_dir
from ofb_deploy.search import OfbSupernet, SearchConfig, run_search
from ofb_deploy.search.loop import SearchState
from ofb_deploy.search.pmim import PixelDecoder
from ofb_deploy.train.loop import set_cpu_threads
from ofb_deploy.utils.io import atomic_write_json

RESULT = Path(__file__).parent / "results" / "search.json"


def step_times(model_name: str, batch: int, repeats: int) -> dict[str, float]:
    """Median seconds of a search step and of a plain training step, interleaved."""
    torch.manual_seed(0)
    dense = create_model(model_name)
    plain = create_model(model_name)
    plain.load_state_dict(dense.state_dict())
    spec = dense.spec
    macs = count_macs(spec).total
    state = SearchState(
        OfbSupernet(dense), PixelDecoder(spec.embed_dim, spec.patch_size, spec.in_chans), SearchConfig(), macs // 2,
        macs, 100,
    )  # fmt: skip
    opt = torch.optim.AdamW(plain.parameters(), lr=1e-4, foreach=True)
    x = torch.randn(batch, spec.in_chans, spec.img_size, spec.img_size)
    y = torch.randint(0, spec.num_classes, (batch,))

    def plain_step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(plain(x), y, label_smoothing=0.1).backward()
        opt.step()

    search_s, plain_s = [], []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        state.step(x, y, 0, 0.5)  # mid warm-up: PMIM on, every unit alive
        t1 = time.perf_counter()
        plain_step()
        t2 = time.perf_counter()
        if i >= 2:  # the first two are warm-up
            search_s.append(t1 - t0)
            plain_s.append(t2 - t1)
    s, p = statistics.median(search_s), statistics.median(plain_s)
    return {"search_step_ms": round(1e3 * s, 2), "train_step_ms": round(1e3 * p, 2), "ratio": round(s / p, 3)}


def flops_error() -> dict[str, float]:
    """A short test_vit search to 50% FLOPs: target, result and relative error."""
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        dense = save_model_dir(create_model("test_vit"), Path(tmp) / "dense")
        config = SearchConfig(epochs=3, batch_size=64, alpha_lr=0.2, warmup_epochs=0.5, train_size=None)
        t0 = time.perf_counter()
        res = run_search(RunDir(Path(tmp) / "run", create=True), config, dense_checkpoint=dense,
                         data=DataConfig(train_size=1536, val_size=256))  # fmt: skip
        seconds = time.perf_counter() - t0
    err = (res["flops"] - res["target_flops"]) / res["target_flops"]
    return {"model": "test_vit", "target_flops": res["target_flops"], "flops": res["flops"],
            "rel_error": round(err, 4), "converged": res["converged"], "seconds": round(seconds, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_fmnist_tiny")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    threads = set_cpu_threads()  # the same automatic choice the search and training make
    result = {
        "model": args.model,
        "batch_size": args.batch_size,
        "threads": threads,
        "step": step_times(args.model, args.batch_size, args.repeats),
        "flops_target": flops_error(),
        "goal_ratio": 1.3,
    }
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))  # noqa: T201  (a script's output, not library code)


if __name__ == "__main__":
    main()
