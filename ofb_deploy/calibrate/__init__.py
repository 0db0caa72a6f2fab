"""INT8 calibration: one ``CalibrationSource`` for ONNX Runtime, TensorRT 10 calibrators and QDQ ONNX."""

from ofb_deploy.calibrate.qdq import CalibrationMethod, QuantConfig, quantize_qdq
from ofb_deploy.calibrate.source import CalibrationSource, OrtCalibrationReader

__all__ = ["CalibrationMethod", "CalibrationSource", "OrtCalibrationReader", "QuantConfig", "quantize_qdq"]
