"""``ofb-deploy info``: library versions, ONNX Runtime providers, TensorRT availability, CUDA devices."""

from __future__ import annotations

import contextlib
import importlib
import platform

from rich.table import Table

from ofb_deploy.cli._app import app, console


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # an optional library may fail to import in many ways (missing .so, no GPU)
        return f"not available ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return str(getattr(mod, "__version__", "installed"))


def collect_info() -> dict[str, str]:
    """Versions and devices as plain strings (also used by reports)."""
    import torch

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ofb_deploy": _version("ofb_deploy"),
        "torch": torch.__version__,
        "timm": _version("timm"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"),
        "tensorrt": _version("tensorrt"),
        "tensorrt_rtx": _version("tensorrt_rtx"),
    }
    with contextlib.suppress(ImportError):
        import onnxruntime as ort

        info["onnxruntime providers"] = ", ".join(ort.get_available_providers())
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda devices"] = "; ".join(names)
    else:
        info["cuda devices"] = "none"
    info["cpu threads"] = str(torch.get_num_threads())
    return info


@app.command("info")
def info_cli() -> None:
    """Show library versions, ONNX Runtime providers, TensorRT availability and CUDA devices."""
    table = Table(show_header=False, box=None)
    for key, value in collect_info().items():
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)
