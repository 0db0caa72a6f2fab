"""Slicing: cut the searched (or hand-written) subnet out of the dense weights into a plain ``OfbViT``."""

from ofb_deploy.slicing.align import align_record
from ofb_deploy.slicing.handwritten import parse_counts, record_from_counts
from ofb_deploy.slicing.record import BlockRecord, SliceRecord
from ofb_deploy.slicing.run import load_subnet, save_subnet, slice_handwritten, slice_run
from ofb_deploy.slicing.slice import slice_subnet, sliced_state_dict, split_scales

__all__ = [
    "BlockRecord",
    "SliceRecord",
    "align_record",
    "load_subnet",
    "parse_counts",
    "record_from_counts",
    "save_subnet",
    "slice_handwritten",
    "slice_run",
    "slice_subnet",
    "sliced_state_dict",
    "split_scales",
]
