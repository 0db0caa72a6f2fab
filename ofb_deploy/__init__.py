"""ofb-deploy: OFB (CVPR 2024) ViT and Swin compression, slicing, ONNX export, engines and validation.

The flat public API below is what scripts use; stages live in subpackages. Heavy optional backends
(TensorRT, TensorRT-RTX, onnxruntime-gpu) are imported lazily, so ``import ofb_deploy`` never fails on them.
"""

from ofb_deploy.engines import build_engine, list_backends, make_runner
from ofb_deploy.errors import (
    ArtifactError,
    BackendUnavailableError,
    ConfigError,
    DataError,
    ModelError,
    OfbError,
    ParityError,
)
from ofb_deploy.export import export_onnx, export_run
from ofb_deploy.models import (
    ArchSpec,
    OfbSwin,
    OfbViT,
    build_model,
    count_macs,
    count_params,
    create_model,
    get_arch_spec,
    list_models,
    load_model_dir,
    save_model_dir,
)
from ofb_deploy.pipeline import RunDir
from ofb_deploy.slicing import load_subnet, slice_subnet
from ofb_deploy.validate.compare import compare_outputs

__version__ = "0.1.0"

__all__ = [
    "build_engine",
    "compare_outputs",
    "export_onnx",
    "export_run",
    "list_backends",
    "make_runner",
    "ArchSpec",
    "ArtifactError",
    "BackendUnavailableError",
    "ConfigError",
    "DataError",
    "ModelError",
    "OfbError",
    "OfbSwin",
    "OfbViT",
    "ParityError",
    "RunDir",
    "build_model",
    "count_macs",
    "count_params",
    "create_model",
    "get_arch_spec",
    "list_models",
    "load_model_dir",
    "save_model_dir",
    "load_subnet",
    "slice_subnet",
]
