"""``DeploymentHealth``: what the resilience guards know about one deployment, in one value,
for ``client.health()``."""

from __future__ import annotations

import attrs

from guardedllm.guards.breaker import BreakerSnapshot, CircuitBreaker
from guardedllm.guards.marks import Mark, UnavailableMarks
from guardedllm.guards.ratelimit import RateLimiter, VendorPause
from guardedllm.guards.retry_budget import RetryBudget

__all__ = ["DeploymentHealth", "deployment_health"]


@attrs.frozen(kw_only=True)
class DeploymentHealth:
    """A deployment's breaker, the retries its budget allows now, its unavailable mark, and the
    vendor's Retry-After holding its calls back (``paused``: the wait asked for and kept)."""

    deployment: str
    breaker: BreakerSnapshot
    retry_balance: float
    unavailable: Mark | None
    paused: VendorPause | None = None

    @property
    def available(self) -> bool:
        """Whether a call would be sent there now: no mark, the breaker not open (a half-open
        breaker admits probes), and no vendor Retry-After in force."""
        return self.unavailable is None and self.breaker.state != "open" and self.paused is None


def deployment_health(
    deployment: str,
    now: float,
    *,
    breaker: CircuitBreaker,
    budget: RetryBudget,
    marks: UnavailableMarks,
    limiter: RateLimiter | None = None,
) -> DeploymentHealth:
    """Read ``deployment``'s guards at ``now`` without changing them."""
    return DeploymentHealth(
        deployment=deployment,
        breaker=breaker.snapshot(deployment, now),
        retry_balance=budget.balance(deployment, now),
        unavailable=marks.unavailable(deployment, now),
        paused=limiter.paused(deployment, now=now) if limiter is not None else None,
    )
