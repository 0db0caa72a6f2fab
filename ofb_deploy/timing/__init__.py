"""Latency measurement, one layer under every stage that times: trtexec's method per runner (``latency``),
interleaved rounds of several runners with ratio medians (``interleaved``), and the one ``TimingConfig``."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "InterleavedResult": "interleaved",
        "LatencyReport": "latency",
        "TimingConfig": "config",
        "machine_info": "latency",
        "measure_interleaved": "interleaved",
        "measure_latency": "latency",
    },
)
