"""Latency tables: a model's parts timed on a backend (``measure``), the table they make and its prediction for
any subnet (``table``); the search's latency budget reads them (``search.cost``)."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {"LatencyTable": "table", "profile_model": "measure"})
