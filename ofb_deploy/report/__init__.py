"""The run report: one document over the results of validate, compare and sweep, rendered as JSON, Markdown and
plots (``report.py``, ``markdown.py``, ``plots.py``). It reads results; no stage reads it."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {"build_report": "report", "render_report": "report"})
