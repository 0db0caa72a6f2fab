"""ONNX export with parity checks, float16 conversion and the export stage."""
