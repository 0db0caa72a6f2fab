"""ONNX export with parity checks, float16 conversion and the export stage."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ExportConfig": "config",
        "ParityChecker": "run",
        "export_model": "run",
        "export_model_dir": "run",
        "export_run": "run",
    },
)
