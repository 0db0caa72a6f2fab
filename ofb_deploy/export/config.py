"""``ExportConfig``: what the export stage writes (``run.py``) and how it checks parity."""

from __future__ import annotations

from typing import Annotated, ClassVar

import onnx
from pydantic import Field

from ofb_deploy.export.onnx import MIN_OPSET
from ofb_deploy.utils.config import ConfigModel, ImageCount, Int

PARITY_IMAGES = 256
# LayerNormalization is one op from opset 17; the newest opset is whatever the installed onnx defines
Opset = Annotated[Int, Field(ge=MIN_OPSET, le=onnx.defs.onnx_opset_version())]


class ExportConfig(ConfigModel):
    """Settings of the export stage.

    Args:
        opset: ONNX opset.
        fp16: also write the float16 ONNX (the pipeline also writes it when the build needs it).
        int8: also write the QDQ INT8 ONNX (the pipeline also writes it when the build needs it).
        parity_images: validation images each ONNX is compared on against PyTorch (``all``: every one).
    """

    SECTION: ClassVar[str] = "export"

    opset: Opset = MIN_OPSET
    fp16: bool = False
    int8: bool = False
    parity_images: ImageCount = PARITY_IMAGES
