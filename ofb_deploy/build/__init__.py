"""The build stage: the engines of a run's models for every backend and precision asked (``engines`` builds one)."""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {"AUTO": "config", "BuildConfig": "config", "build_plan": "run", "build_run": "run"},
)
