"""Validation: output comparison, latency and reports for built engines.

``compare`` scores outputs against a reference; ``latency`` times one runner (trtexec's method) and
``interleaved`` times dense and subnet in alternating rounds; ``validate_run`` measures a whole run and
``render_report`` writes the report (JSON, Markdown, plots) from it.
"""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "TargetsConfig": "config",
        "ValidateConfig": "config",
        "read_validation": "validate",
        "validate_run": "validate",
    },
)
