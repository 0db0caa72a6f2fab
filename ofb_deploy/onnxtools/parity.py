"""Output parity against a reference (Polygraphy's ``Comparator`` idea, reduced to what a ViT needs).

``compare_outputs`` scores one candidate's outputs against one fp32 reference's with the usual parity numbers:
max, mean and p99 absolute error, cosine similarity (per sample, averaged) and top-1 agreement. Tolerances are
optional; a report with tolerances says whether it ``passed`` and why not. Numpy only: the outputs come from
``engines.outputs.run_runners`` or anywhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from ofb_deploy.errors import ConfigError
from ofb_deploy.models.io import OUTPUT_NAME

GPU_BACKENDS = ("ort-cuda", "ort-trt", "tensorrt", "tensorrt-rtx")
NON_FINITE = "candidate has non-finite values"


def parity_tolerance(backend: str, precision: str, tf32: bool = False) -> dict[str, float]:
    """``compare_outputs`` tolerances of an engine against the fp32 PyTorch reference.

    fp32 on the CPU differs from eager torch only by summation order. GPU kernels (cuBLAS, TensorRT tactics) add
    their own order and fused epilogues: 1e-3. TF32 keeps 10 mantissa bits (about 1e-3 relative per product), so
    logits can move by a few hundredths: judged by cosine. fp16 and int8 are judged by agreement, since their
    logit errors scale with the logits (as in export parity).

    Args:
        backend: backend name (``torch`` counts as CPU).
        precision: ``fp32``, ``fp16`` or ``int8``.
        tf32: the engine was built with TF32 allowed (sidecar ``tf32``).
    """
    if precision == "fp16":
        return {"min_cosine": 0.999, "min_top1": 0.95}
    if precision == "int8":
        return {"min_cosine": 0.98, "min_top1": 0.90}
    if precision != "fp32":
        raise ConfigError(f"unknown precision {precision!r}; choose fp32, fp16 or int8")
    if backend not in GPU_BACKENDS:
        return {"max_abs": 1e-4, "min_cosine": 0.999999}
    if tf32:
        return {"max_abs": 5e-2, "min_cosine": 0.9999}
    return {"max_abs": 1e-3, "min_cosine": 0.99999}


@dataclass(frozen=True)
class AccuracyReport:
    """How far one output of a candidate is from the reference.

    Args:
        output: the output name compared.
        samples: rows compared (the batch axis summed over all feeds).
        max_abs: largest absolute difference.
        mean_abs: mean absolute difference.
        p99_abs: 99th percentile of the absolute difference.
        cosine: per-sample cosine similarity, averaged over samples.
        min_cosine: the worst sample's cosine similarity.
        top1_agreement: fraction (0..1) of samples whose argmax agrees.
        failures: why the report fails its tolerances (empty: passed or no tolerances).
    """

    output: str
    samples: int
    max_abs: float
    mean_abs: float
    p99_abs: float
    cosine: float
    min_cosine: float
    top1_agreement: float
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every tolerance given to ``compare_outputs`` holds."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["failures"] = list(self.failures)
        doc["passed"] = self.passed
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AccuracyReport:
        """The report ``to_dict`` wrote (``passed`` is derived, not read)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k == "failures" else v for k, v in doc.items() if k in names})

    def with_tolerances(
        self,
        max_abs: float | None = None,
        mean_abs: float | None = None,
        min_cosine: float | None = None,
        min_top1: float | None = None,
    ) -> AccuracyReport:
        """This report judged against tolerances (``None``: not checked); a non-finite candidate always fails."""
        stats = {"max_abs": self.max_abs, "mean_abs": self.mean_abs, "cosine": self.cosine}
        stats["top1_agreement"] = self.top1_agreement
        limits = [("max_abs", max_abs, "<="), ("mean_abs", mean_abs, "<="), ("cosine", min_cosine, ">=")]
        limits.append(("top1_agreement", min_top1, ">="))
        failures = tuple(
            f"{key} {stats[key]:.4g} {'>' if op == '<=' else '<'} {limit:.4g}"
            for key, limit, op in limits
            if limit is not None and (stats[key] > limit if op == "<=" else stats[key] < limit)
        )
        failures += tuple(f for f in self.failures if f == NON_FINITE)
        return replace(self, failures=failures)

    def summary(self) -> str:
        """One line for logs and errors."""
        return (
            f"max {self.max_abs:.3g}, mean {self.mean_abs:.3g}, p99 {self.p99_abs:.3g}, "
            f"cosine {self.cosine:.6f}, top-1 agreement {100 * self.top1_agreement:.2f}% on {self.samples}"
        )


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    denom = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    dot = (a2 * b2).sum(axis=1)
    # NOTE: two all-zero rows are identical (cosine 1); one zero row against a non-zero one is cosine 0
    both_zero = denom == 0
    return np.where(
        both_zero, np.where(np.abs(a2 - b2).max(axis=1) == 0, 1.0, 0.0), dot / np.where(both_zero, 1, denom)
    )


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    *,
    output: str = OUTPUT_NAME,
    max_abs: float | None = None,
    mean_abs: float | None = None,
    min_cosine: float | None = None,
    min_top1: float | None = None,
) -> AccuracyReport:
    """Score ``candidate[output]`` against ``reference[output]``.

    Args:
        reference: output name to array (batch axis first), from the fp32 reference.
        candidate: the same for the engine under test; cast to float32 before comparing.
        output: which output to compare.
        max_abs: fail when the max absolute error exceeds this.
        mean_abs: fail when the mean absolute error exceeds this.
        min_cosine: fail when the mean per-sample cosine is below this.
        min_top1: fail when top-1 agreement (0..1) is below this.
    """
    if output not in reference or output not in candidate:
        raise ConfigError(
            f"output {output!r} missing: reference has {sorted(reference)}, candidate {sorted(candidate)}"
        )
    ref = np.asarray(reference[output], dtype=np.float32)
    cand = np.asarray(candidate[output], dtype=np.float32)
    if ref.shape != cand.shape:
        raise ConfigError(f"output {output!r}: reference shape {ref.shape} differs from candidate {cand.shape}")
    if ref.size == 0:
        raise ConfigError(f"output {output!r} is empty: nothing to compare")
    diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
    cos = _cosine_rows(ref, cand)
    top1 = float(np.mean(ref.reshape(len(ref), -1).argmax(1) == cand.reshape(len(cand), -1).argmax(1)))
    report = AccuracyReport(
        output=output,
        samples=len(ref),
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        p99_abs=float(np.percentile(diff, 99)),
        cosine=float(cos.mean()),
        min_cosine=float(cos.min()),
        top1_agreement=top1,
        failures=() if np.isfinite(cand).all() else (NON_FINITE,),
    )
    return report.with_tolerances(max_abs, mean_abs, min_cosine, min_top1)
