"""ofb-deploy: OFB (CVPR 2024) ViT and Swin compression, slicing, ONNX export, engines and validation.

The flat public API below is what scripts use; stages live in subpackages. Everything loads on first use
(``utils.lazy``), so ``import ofb_deploy`` is cheap and never fails on an optional backend (TensorRT,
TensorRT-RTX, onnxruntime-gpu).
"""

from ofb_deploy.utils.lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "build_engine": "engines",
        "compare_outputs": "onnxtools",
        "export_onnx": "onnxtools",
        "export_run": "export",
        "list_backends": "engines",
        "make_runner": "engines",
        "ArchSpec": "models",
        "ArtifactError": "errors",
        "BackendUnavailableError": "errors",
        "ConfigError": "errors",
        "DataError": "errors",
        "ModelError": "errors",
        "OfbError": "errors",
        "OfbSwin": "models",
        "OfbViT": "models",
        "ParityError": "errors",
        "RunDir": "artifacts",
        "build_model": "models",
        "count_macs": "models",
        "count_params": "models",
        "create_model": "models",
        "get_arch_spec": "models",
        "list_models": "models",
        "load_model_dir": "models",
        "save_model_dir": "models",
        "load_subnet": "slicing",
        "slice_subnet": "slicing",
    },
)
