"""INT8 calibration: one ``CalibrationSource`` for ONNX Runtime, TensorRT 10 calibrators and QDQ ONNX."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "CalibrationMethod": "qdq",
        "CalibrationSource": "source",
        "OrtCalibrationReader": "source",
        "QuantConfig": "qdq",
        "quantize_qdq": "qdq",
    },
)
