"""Guards: pure state machines over a ``StateBackend``, every decision taking ``now``.

Resilience: ``CircuitBreaker`` (per deployment), ``RetryBudget`` (retries bounded by recent
traffic), ``UnavailableMarks`` (deployments known missing) and ``DeploymentHealth``.

Cost and load: ``SpendLedger`` (spend budgets: reserve the worst case, settle the actual) and
``RateLimiter`` (rpm/tpm token buckets per deployment, learning the vendor's own counts).
"""

from guardedllm.guards._vendor_limits import VendorLimit, VendorLimits
from guardedllm.guards.breaker import (
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    Cause,
    CircuitBreaker,
    Outcome,
    Permit,
    Transition,
    TransitionReason,
)
from guardedllm.guards.health import DeploymentHealth, deployment_health
from guardedllm.guards.marks import Mark, UnavailableMarks
from guardedllm.guards.ratelimit import RateDecision, RateLimiter, RetryAfter, VendorPause
from guardedllm.guards.retry_budget import RetryBudget, RetryBudgetConfig
from guardedllm.guards.spend import (
    Reservation,
    SpendBudget,
    SpendLedger,
    SpendStatus,
    window_bounds,
)

__all__ = [
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "Cause",
    "CircuitBreaker",
    "DeploymentHealth",
    "Mark",
    "Outcome",
    "Permit",
    "RateDecision",
    "RateLimiter",
    "Reservation",
    "RetryAfter",
    "RetryBudget",
    "RetryBudgetConfig",
    "SpendBudget",
    "SpendLedger",
    "SpendStatus",
    "Transition",
    "TransitionReason",
    "UnavailableMarks",
    "VendorLimit",
    "VendorLimits",
    "VendorPause",
    "deployment_health",
    "window_bounds",
]
