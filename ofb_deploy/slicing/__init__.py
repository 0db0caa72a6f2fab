"""Slicing: cut the searched (or hand-written) subnet out of the dense weights into a plain ``OfbViT``."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "BlockRecord": "record",
        "SliceConfig": "config",
        "SliceRecord": "record",
        "align_record": "align",
        "load_subnet": "run",
        "parse_counts": "handwritten",
        "record_from_counts": "handwritten",
        "save_subnet": "run",
        "slice_handwritten": "run",
        "slice_run": "run",
        "slice_subnet": "slice",
        "sliced_state_dict": "slice",
        "split_scales": "slice",
    },
)
