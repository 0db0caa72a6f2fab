"""``ExportConfig``: what the export stage writes (``run.py``) and how it checks parity."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field

from ofb_deploy.choices import Quantizer
from ofb_deploy.onnxtools.export import MIN_OPSET
from ofb_deploy.utils.config import ConfigModel, ImageCount, Int

PARITY_IMAGES = 256


def _known_opset(value: int) -> int:
    if value > MIN_OPSET:  # NOTE: onnx is imported only for a non-default opset (configs load without it)
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if value > newest:
            raise ValueError(f"allowed: {MIN_OPSET}..{newest} (the newest opset the installed onnx knows)")
    return value


Opset = Annotated[Int, Field(ge=MIN_OPSET), AfterValidator(_known_opset)]


class ExportConfig(ConfigModel):
    """Settings of the export stage.

    Args:
        opset: ONNX opset.
        fp16: also write the float16 ONNX (the pipeline also writes it when the build needs it).
        int8: also write the QDQ INT8 ONNX (the pipeline also writes it when the build needs it).
        parity_images: validation images each ONNX is compared on against PyTorch (``all``: every one).
        quantizer: who writes the QDQ INT8 ONNX: ONNX Runtime static quantization (``ort``) or NVIDIA ModelOpt
            (``modelopt``, needs ``pip install 'ofb-deploy[modelopt]'``).
    """

    SECTION: ClassVar[str] = "export"

    opset: Opset = MIN_OPSET
    fp16: bool = False
    int8: bool = False
    parity_images: ImageCount = PARITY_IMAGES
    quantizer: Quantizer = Quantizer.ORT
