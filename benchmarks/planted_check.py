"""Planted redundancy on the default preset: does the search give a zeroed module less width than every live one?

    python benchmarks/planted_check.py            # -> benchmarks/results/planted.json; exit 1 when it fails

The shipped converged checkpoint has block 2's MLP and block 3's attention zeroed (weights and biases: their
output is exactly zero and stays zero under training, ``search.planted``); the default run's search then runs on
it at 50% of the dense MACs, and the verdict checks each dead module against every live module of its kind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ofb_deploy.artifacts import RunDir  # noqa: E402
from ofb_deploy.models.checkpoint import load_model_dir, save_model_dir  # noqa: E402
from ofb_deploy.models.pretrained import pretrained_dir  # noqa: E402
from ofb_deploy.pipeline.config import load_config  # noqa: E402
from ofb_deploy.search.planted import plant_dead_modules, planted_verdict  # noqa: E402
from ofb_deploy.search.run import run_search  # noqa: E402
from ofb_deploy.utils.io import atomic_write_json, read_json  # noqa: E402

DEAD_ATTN, DEAD_MLP = (3,), (2,)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "planted")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "planted.json")
    parser.add_argument("--set", action="append", default=[], help="search.key=value over the default preset")
    args = parser.parse_args()
    config = load_config("default", sets=args.set)
    dense = load_model_dir(pretrained_dir(config.model))
    plant_dead_modules(dense, attn=DEAD_ATTN, mlp=DEAD_MLP)
    source = save_model_dir(dense, args.run_dir / "planted_dense")
    started = time.perf_counter()
    run = RunDir(args.run_dir / "run", create=True)
    run_search(run, config.search, dense_checkpoint=source, data=config.data, resume=True)
    doc = read_json(run.arch_path)
    verdict = planted_verdict(doc["blocks"], attn=DEAD_ATTN, mlp=DEAD_MLP)
    result = {
        "model": config.model,
        "target_flops": config.search.target_flops,
        "flops_ratio": round(doc["flops"] / doc["dense_flops"], 4),
        "embed_dim": doc["embed_dim"],
        "search_seconds": round(time.perf_counter() - started, 1),
        "search": config.search.to_dict(),
        **verdict,
    }
    atomic_write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("embed_dim", "attn_widths", "mlp_widths", "passed")}))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
