"""Deployment bundles for edge GPUs (``ofb-deploy bundle``): the ONNX in the form the device's TensorRT parses,
INT8 artifacts, build/run/check scripts, golden data, Triton and DeepStream layouts, and a manifest."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "BundleConfig": "make",
        "TARGETS": "targets",
        "build_plans": "commands",
        "decompose_layernorm": "forms",
        "make_bundle": "make",
        "parse_target": "targets",
        "target_table": "targets",
        "trtexec_flags": "commands",
    },
)
