"""The model's input and output tensor names in ONNX, engines and reader feeds (a torch-free module, so numpy
readers and runners can name their tensors without importing a model)."""

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
