"""Validation: output comparison, latency and reports for built engines.

``compare`` scores outputs against a reference; ``latency`` times one runner (trtexec's method) and
``interleaved`` times dense and subnet in alternating rounds; ``validate_run`` measures a whole run and
``render_report`` writes the report (JSON, Markdown, plots) from it.
"""

from ofb_deploy.validate.config import TargetsConfig, ValidateConfig
from ofb_deploy.validate.latency import LatencyReport, machine_info, measure_latency
from ofb_deploy.validate.validate import read_validation, validate_run

__all__ = [
    "LatencyReport",
    "TargetsConfig",
    "ValidateConfig",
    "machine_info",
    "measure_latency",
    "read_validation",
    "render_report",
    "validate_run",
]


def __getattr__(name: str):  # noqa: ANN202  (module __getattr__: report imports matplotlib lazily anyway)
    if name == "render_report":
        from ofb_deploy.validate.report import render_report

        return render_report
    raise AttributeError(f"module 'ofb_deploy.validate' has no attribute {name!r}")
