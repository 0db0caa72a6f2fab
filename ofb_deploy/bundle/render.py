"""Text of a bundle's generated files: ``build.sh`` from its template, and the bundle's ``README.md``.

The templates are package data (``ofb_deploy/bundle/templates``); ``@@NAME@@`` marks what is filled in here.
``build.sh`` gets one ``case`` arm per build of the bundle (``commands.build_plans``) with its trtexec and Python
builder arguments as bash arrays; paths in them expand from variables ``build.sh`` sets (``$HERE``, ``$ENGINE_TMP``,
``$TIMING``, ``$CALIB``, ``$FP32_LAYERS``).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from ofb_deploy.artifacts import BUNDLE_FILES, TRITON_MODEL_FILES, TRITON_VERSION
from ofb_deploy.bundle.commands import BuildPlan, builder_args, trtexec_flags
from ofb_deploy.bundle.targets import TargetSpec, target_table
from ofb_deploy.errors import ArtifactError

SCRIPTS = ("builder", "runtime", "run", "check")  # copied verbatim from the templates (BUNDLE_FILES keys)
TEMPLATE_NAMES = {"builder": "build_engine.py", "runtime": "bundle_runtime.py", "run": "run.py", "check": "check.py"}


def template(name: str) -> str:
    """The text of a template shipped in the package."""
    try:
        return resources.files("ofb_deploy.bundle").joinpath("templates", name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise ArtifactError(f"bundle template {name} is missing from the installed package: reinstall it") from exc


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text:
        raise ArtifactError(f"unfilled placeholder in a bundle template near {text[text.index('@@') :][:40]!r}")
    return text


def _bash_array(name: str, args: list[str]) -> str:
    quoted = " ".join(f'"{a}"' for a in args)
    return f"            {name}=({quoted})"


def build_script(
    target: TargetSpec,
    precision: str,
    plans: list[BuildPlan],
    io: dict[str, Any],
    profile: tuple[int, int, int],
    workspace_mib: int,
    triton_model: str | None,
) -> str:
    """``build.sh`` for the bundle.

    Args:
        target: the bundle's target.
        precision: ``fp16`` or ``int8``.
        plans: the builds (default first).
        io: ``{"input": name, "chw": (c, h, w)}``.
        profile: min, opt and max batch.
        workspace_mib: default workspace limit.
        triton_model: the Triton model's folder name when the bundle has a TensorRT Triton layout.
    """
    arms = []
    for plan in plans:
        flags = trtexec_flags(target, plan, io["input"], io["chw"], profile, workspace_mib)
        flags = [f.replace(f"workspace:{workspace_mib}", "workspace:$WORKSPACE") for f in flags]
        bargs = builder_args(plan, target.library, profile, workspace_mib)
        bargs = ["$WORKSPACE" if a == str(workspace_mib) else a for a in bargs]
        arms.append(
            f"        {plan.mode})\n{_bash_array('ARGS', flags)}\n{_bash_array('BARGS', bargs)}\n            ;;"
        )
    plan_file = ""
    if triton_model is not None:
        plan_file = f"{BUNDLE_FILES['triton']}/{triton_model}/{TRITON_VERSION}/{TRITON_MODEL_FILES['tensorrt_plan']}"
    low, high = target.accepts
    values = {
        "TARGET": target.name,
        "PRECISION": precision,
        "LIBRARY": target.library,
        "LIBRARY_NAME": "TensorRT-RTX" if target.library == "tensorrt_rtx" else "TensorRT",
        "ACCEPT_LO": f"{low[0]}.{low[1]}",
        "ACCEPT_HI": f"{high[0]}.{high[1]}",
        "MODES": " ".join(p.mode for p in plans),
        "ENGINE_DIR": BUNDLE_FILES["engine_dir"],
        "CALIB_CACHE": BUNDLE_FILES["calib_cache"],
        "FP32_LAYERS": BUNDLE_FILES["fp32_layers"],
        "BUILDER": BUNDLE_FILES["builder"],
        "TRITON_PLAN": plan_file,
        "WORKSPACE": str(workspace_mib),
        "PROFILE_JSON": json.dumps(dict(zip(("min", "opt", "max"), profile, strict=True))),
        "ARGS": "\n".join(arms),
    }
    return _fill(template("build.sh.in"), values)


def _files_table(files: dict[str, dict[str, Any]], notes: dict[str, str]) -> str:
    rows = []
    for rel, entry in sorted(files.items()):
        what = notes.get(rel) or next((text for prefix, text in notes.items() if rel.startswith(prefix + "/")), "")
        rows.append(f"| `{rel}` | {entry['bytes']:,} | {what} |")
    return "\n".join(rows)


def _numbers(doc: dict[str, Any]) -> str:
    rows = []
    for key, m in doc["golden"]["measured"].items():
        parity = doc["onnx"].get(key, {}).get("parity", {})
        par = f"{parity.get('top1_agreement', float('nan')):.4f}, {parity.get('cosine', float('nan')):.6f}"
        rows.append(f"| `{BUNDLE_FILES[key]}` | {m['top1']:.2f}% | {m['top1_agreement']:.4f} | {m['max_abs']:.3g} | "
                    f"{par} |")  # fmt: skip
    return "\n".join(rows)


def _builds(doc: dict[str, Any]) -> str:
    lines = ["## Builds", ""]
    for mode, plan in doc["plans"].items():
        default = " (default)" if mode == doc["default_mode"] else " (`bash build.sh --implicit-int8`)"
        lines.append(f"**{mode}**{default}, from `{BUNDLE_FILES[plan['onnx']]}` (`$HERE` is this folder):")
        lines += ["", "```", plan["dry_run"], "```", ""]
    return "\n".join(lines)


def readme(doc: dict[str, Any], notes: dict[str, str]) -> str:
    """The bundle's ``README.md`` from its manifest document (``doc``) and a note per file prefix."""
    target, arch = doc["target"], doc["arch"]
    tol = doc["golden"]["tolerances"]
    run_top1 = doc.get("run_top1") or {}
    run_line = ""
    if run_top1:
        parts = ", ".join(f"{k} {v:.2f}%" for k, v in run_top1.items() if isinstance(v, (int, float)))
        run_line = f"The run's own validation (`ofb-deploy validate`, its whole validation set): {parts}.\n"
    layouts = " + ".join(doc["layouts"])
    values = {
        "MODEL": doc["model_name"],
        "TARGET_LONG": f"{target['name']}{' + ' + layouts if layouts else ''} ({target['device']})",
        "CREATED": doc["created_at"],
        "SOURCE": doc["source"]["path"],
        "ROLE": doc["source"]["role"],
        "ARCH": f"{arch['base_model']}, embed {arch['embed_dim']}, {len(arch['num_heads'])} blocks",
        "MACS": f"{doc['macs'] / 1e6:.2f} M MACs/image",
        "PRECISION": doc["precision"],
        "PROFILE": "/".join(str(b) for b in doc["profile"]),
        "ENGINE": f"{BUNDLE_FILES['engine_dir']}/{TRITON_MODEL_FILES['tensorrt_plan']}",
        "BATCHES": ",".join(str(b) for b in doc["batches"]),
        "LIBRARY": target["library"],
        "BUILDS": _builds(doc),
        "FILES": _files_table(doc["files"], notes),
        "GOLDEN_N": str(doc["golden"]["images"]),
        "NUMBERS": _numbers(doc),
        "RUN_TOP1": run_line,
        "TOL_AGREE": str(tol["min_top1_agreement"]),
        "TOL_DROP": str(tol["max_top1_drop"]),
        "TOL_ABS": f"{tol['max_abs']:.4g}",
    }
    return _fill(template("README.md.in"), values)


def list_text() -> str:
    """``bundle --list`` as plain text (the CLI draws it as a table)."""
    return "\n".join(" | ".join(row.values()) for row in target_table())


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
