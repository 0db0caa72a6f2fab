"""INT8 calibration: one ``CalibrationSource`` for ONNX Runtime, TensorRT 10 calibrators and caches, QDQ ONNX (ORT or
ModelOpt)."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "CalibrationMethod": "qdq",
        "CalibrationSource": "source",
        "OrtCalibrationReader": "source",
        "QuantConfig": "qdq",
        "quantize_modelopt": "modelopt",
        "quantize_qdq": "qdq",
        "tensor_ranges": "trt_cache",
        "write_trt_calib_cache": "trt_cache",
    },
)
