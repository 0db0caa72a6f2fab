"""Inference backends behind one ``Runner`` interface, their loaders, the backend registry and engine builds.

Everything loads on first use (``utils.lazy``): importing this package never imports an optional backend library,
and ``build_engine`` / ``build_run`` (which import export and calibration code) load only when called.
"""

from ofb_deploy.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "BACKENDS": "registry",
        "PRECISIONS": "registry",
        "BackendStatus": "registry",
        "Runner": "base",
        "TensorSpec": "base",
        "TrtBuildConfig": "config",
        "build_engine": "builder",
        "list_backends": "registry",
        "make_runner": "registry",
    },
)
