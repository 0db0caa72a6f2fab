"""ONNX export with parity checks, float16 conversion and the export stage."""

from ofb_deploy.export.config import ExportConfig
from ofb_deploy.export.onnx import check_onnx, convert_fp16, export_onnx
from ofb_deploy.export.run import ParityChecker, export_model, export_model_dir, export_run

__all__ = [
    "ExportConfig",
    "ParityChecker",
    "check_onnx",
    "convert_fp16",
    "export_model",
    "export_model_dir",
    "export_onnx",
    "export_run",
]
