"""The run directory and the pipeline that chains the stages through it."""

from ofb_deploy.pipeline.run_dir import STAGES, RunDir

__all__ = ["STAGES", "RunDir"]
