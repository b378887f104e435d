"""Learning how far a deployment's token estimates run from what its vendor bills.

Every answered call reports the vendor's prompt_tokens; set against the tokenizer's own count
for the same request, that ratio is the calibration factor for the deployment. For models whose
tokenizer we only stand in for (Claude, Gemini, open models) the factor scales later estimates;
for OpenAI models it should stay at 1.0, and the error statistics show when it does not (a
model swap that changed the tokenizer shows up here first).

Pure bookkeeping behind a lock held only for a few arithmetic operations.
"""

from __future__ import annotations

import threading

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError

__all__ = ["CalibrationStats", "Calibrator"]


@attrs.frozen(kw_only=True)
class CalibrationStats:
    """How a deployment's estimates compare with the vendor's counts.

    ``factor`` is the smoothed ratio actual/counted; ``mean_abs_error`` and ``bias`` are
    relative errors of the estimates as made (after calibration and margin): 0.05 means 5 %.
    A positive bias means estimates ran high (the safe side).
    """

    deployment: str
    samples: int
    factor: float
    mean_abs_error: float
    bias: float
    last_ratio: float


@attrs.define
class _Running:
    samples: int = 0
    factor: float = 1.0
    abs_error_sum: float = 0.0
    error_sum: float = 0.0
    last_ratio: float = 1.0


class Calibrator:
    """Per-deployment calibration factors learned from observed usage (EWMA)."""

    def __init__(self, *, alpha: float = defaults.CALIBRATION_ALPHA) -> None:
        if not 0 < alpha <= 1:
            raise ArgumentError(f"alpha must be in (0, 1]; got {alpha}")
        self._alpha = alpha
        self._lock = threading.Lock()
        self._by_deployment: dict[str, _Running] = {}

    def factor(self, deployment: str) -> float:
        """The factor to scale ``deployment``'s stand-in counts by (1.0 until observed)."""
        running = self._by_deployment.get(deployment)
        return running.factor if running is not None else 1.0

    def observe(self, deployment: str, *, counted: int, estimated: int, actual: int) -> None:
        """Record one call: the tokenizer's count, the estimate made, the vendor's count."""
        if counted <= 0 or actual <= 0 or estimated <= 0:
            return  # nothing to learn from an empty count or a missing usage report
        ratio = actual / counted
        error = (estimated - actual) / actual
        with self._lock:
            running = self._by_deployment.setdefault(deployment, _Running())
            if running.samples == 0:
                running.factor = ratio
            else:
                running.factor += self._alpha * (ratio - running.factor)
            running.samples += 1
            running.abs_error_sum += abs(error)
            running.error_sum += error
            running.last_ratio = ratio

    def stats(self) -> dict[str, CalibrationStats]:
        """Every observed deployment's statistics."""
        with self._lock:
            return {
                name: CalibrationStats(
                    deployment=name,
                    samples=r.samples,
                    factor=r.factor,
                    mean_abs_error=r.abs_error_sum / r.samples,
                    bias=r.error_sum / r.samples,
                    last_ratio=r.last_ratio,
                )
                for name, r in self._by_deployment.items()
            }
