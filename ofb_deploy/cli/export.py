"""``ofb-deploy export``: ONNX (fp32, optional float16 and QDQ INT8) of a run's models or of one model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ofb_deploy.artifacts import RunDir, model_stem
from ofb_deploy.choices import Quantizer
from ofb_deploy.cli._app import ALL_HELP, app, console
from ofb_deploy.errors import ConfigError
from ofb_deploy.export.config import ExportConfig
from ofb_deploy.export.run import export_model_dir, export_run

E = ExportConfig.default


def _parity_table(doc: dict) -> Table:
    table = Table("model", "precision", "file", "max abs", "p99 abs", "cosine", "top-1 agree")
    for role, entry in doc.items():
        if not isinstance(entry, dict) or "fp32" not in entry:
            continue
        for precision in ("fp32", "fp16", "int8"):
            if precision in entry and "parity" in entry[precision]:
                p = entry[precision]["parity"]
                row = (f"{p['max_abs']:.2e}", f"{p['p99_abs']:.2e}", f"{p['cosine']:.6f}",
                       f"{100 * p['top1_agreement']:.2f}%")  # fmt: skip
                table.add_row(role, precision, entry[precision]["path"], *row)
    return table


@app.command("export")
def export_cli(
    target: Annotated[Path, typer.Argument(help="Run directory, or a model folder.", show_default=False)],
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17: LayerNorm as one op).")] = E("opset"),
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write the float16 ONNX.")] = E("fp16"),
    int8: Annotated[bool, typer.Option("--int8", help="Also write the QDQ INT8 ONNX (calibrated).")] = E("int8"),
    quantizer: Annotated[
        Quantizer, typer.Option(help="Who writes the INT8 ONNX: ONNX Runtime static quantization, or NVIDIA ModelOpt.")
    ] = E("quantizer"),
    out: Annotated[Path | None, typer.Option(help="Output folder for a model folder (default: the folder).")] = None,
    parity_images: Annotated[str, typer.Option(help=f"Validation images compared against PyTorch: {ALL_HELP}.")] = str(
        E("parity_images")
    ),
) -> None:
    """Export to ONNX with a dynamic batch, check it and compare it with PyTorch on real images."""
    config = ExportConfig(opset=opset, fp16=fp16, int8=int8, parity_images=parity_images, quantizer=quantizer)
    if model_stem(target) is not None:
        doc = export_model_dir(target, out, config)
    elif out is not None:
        raise ConfigError("--out applies to a model folder; a run directory exports into its own export folder")
    else:
        doc = export_run(RunDir(target), config)
    console.print(_parity_table(doc))
