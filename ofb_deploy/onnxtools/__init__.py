"""The ONNX leaf every stage shares: export and check (``export``), the precision a file holds (``precision``) and
output parity against a reference (``parity``). It imports no stage, so export, build, validate, profile and
bundle all stand on it."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "AccuracyReport": "parity",
        "OnnxPrecision": "precision",
        "check_onnx": "export",
        "compare_outputs": "parity",
        "convert_fp16": "export",
        "export_onnx": "export",
        "inspect_onnx_precision": "precision",
        "parity_tolerance": "parity",
    },
)
