"""The run report: one document over the results of validate, compare and sweep, rendered as JSON, Markdown and
plots (``report.py``, ``markdown.py``, ``plots.py``); its typed model is ``results.Report`` and docs/report_schema.md
is generated from the result models (``schema.py``). It reads results; no stage reads it."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {"Report": "results", "build_report": "report", "read_report": "report", "render_report": "report"},
)
