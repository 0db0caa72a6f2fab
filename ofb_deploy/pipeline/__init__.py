"""The pipeline: its config (``config.py``) and ``run_pipeline`` (``run.py``), which chains the stages through
one run directory. It only orchestrates: file names live in ``ofb_deploy.artifacts``, the work in the stages."""
