"""``RetryBudget``: retries bounded by a share of recent requests, per deployment.

Finagle's ``RetryBudget``: every original request deposits ``percent_can_retry`` of a retry,
every retry (and every hedge) withdraws one, and a reserve of ``min_retries_per_s * ttl_s``
lets a quiet or just-started client retry a blip. Deposits *and* withdrawals expire after about
``ttl_s``, so the budget reflects recent traffic: during a full outage each call costs about
``1 + percent_can_retry`` attempts instead of ``max_attempts``.

Model: windowed counters, not a token bucket. A bucket remembers old deposits up to its
capacity, so a long healthy period would bank retries to spend in one burst at the start of an
outage; expiring counters forget them, which is what "recent" means. Time is cut into
``slices`` slices of ``ttl_s / slices``; each slice is one backend counter holding its *net
spend* (retries withdrawn minus ``percent_can_retry`` per request), expiring once it leaves the
window. A withdrawal reads the past slices and then adds 1 to the current slice's counter with
the limit ``reserve - past spend``; the counter's limit check is the atomic step, so concurrent
withdrawals in a slice can never overdraw it. A deposit is a negative add, always applied.

Invariant (property-tested): whenever a retry is granted at time t,
    retries granted in [t - ttl_s, t] <= percent_can_retry * requests in [t - ttl_s - slice, t]
                                        + min_retries_per_s * ttl_s
(slice = ttl_s / slices). So every ttl_s of retries is paid for by the requests of the ttl_s
before it; the slack is that a deposit counts for between ``ttl_s`` and ``ttl_s + slice``, from
the slice granularity (a withdrawal sees ``slices + 1`` slices so that the whole ttl_s before it
lies in its view). An interval that does not end at a retry may hold retries paid for by
requests just before it — that is what the budget is for. Under concurrency the only further
slack is a caller whose ``now`` lies in an earlier slice than a concurrent caller's: its
withdrawal lands in a slice the other has already read, so each such straggler can overdraw by
its one retry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from guardedllm import defaults
from guardedllm._checks import require_number
from guardedllm.errors import ArgumentError
from guardedllm.state import flow as ops
from guardedllm.state.base import StateBackend
from guardedllm.state.flow import Flow, run

__all__ = ["RetryBudget", "RetryBudgetConfig"]

# Net spends are sums of float deposits (0.2 + 0.2 + ... is not exactly 1.0); a withdrawal that
# the exact arithmetic allows must not be refused by a rounding error.
_EPSILON = 1e-9


def _non_negative(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    require_number("RetryBudgetConfig", attribute.name, value)
    if not (value >= 0 and math.isfinite(value)):
        raise ArgumentError(
            f"RetryBudgetConfig.{attribute.name} must be a finite number >= 0; got {value!r}"
        )


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    require_number("RetryBudgetConfig", attribute.name, value)
    if not (value > 0 and math.isfinite(value)):
        raise ArgumentError(
            f"RetryBudgetConfig.{attribute.name} must be a finite number > 0; got {value!r}"
        )


def _at_least_one(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    require_number("RetryBudgetConfig", attribute.name, value, whole=True)
    if value < 1:
        raise ArgumentError(f"RetryBudgetConfig.{attribute.name} must be >= 1; got {value!r}")


@attrs.frozen(kw_only=True)
class RetryBudgetConfig:
    """How much retrying a deployment's recent traffic earns. ``percent_can_retry`` is a
    fraction (0.2 allows one retry per five requests); with it and ``min_retries_per_s`` both 0
    nothing is ever retried."""

    percent_can_retry: float = attrs.field(
        default=defaults.RETRY_BUDGET_PERCENT, validator=_non_negative
    )
    min_retries_per_s: float = attrs.field(
        default=defaults.RETRY_BUDGET_MIN_PER_S, validator=_non_negative
    )
    ttl_s: float = attrs.field(default=defaults.RETRY_BUDGET_TTL_S, validator=_positive)
    slices: int = attrs.field(default=defaults.WINDOW_SLICES, validator=_at_least_one)

    @property
    def reserve(self) -> float:
        """Retries allowed in any window regardless of traffic."""
        return self.min_retries_per_s * self.ttl_s

    @property
    def slice_s(self) -> float:
        return self.ttl_s / self.slices


class RetryBudget:
    """Per-deployment retry budget over a ``StateBackend``; keys are ``retry_budget:<key>:<n>``.
    Every method takes ``now`` (seconds on the caller's clock) and is safe to call from many
    threads and tasks at once."""

    def __init__(self, backend: StateBackend, config: RetryBudgetConfig | None = None) -> None:
        self.backend = backend
        self.config = config or RetryBudgetConfig()

    def deposit(self, key: str, now: float) -> None:
        """Credit one original request (not a retry) sent to ``key``."""
        run(self.backend, self.deposit_flow(key, now))

    def deposit_flow(self, key: str, now: float, *, requests: float = 1.0) -> Flow[None]:
        """``deposit`` as a flow of backend operations (``guardedllm.state.flow``), for
        ``requests`` requests (-1 takes back the deposit of a request that was not sent)."""
        if self.config.percent_can_retry == 0:
            return
        index = self._slice(now)
        yield ops.counter_add(
            self._key(key, index),
            -self.config.percent_can_retry * requests,
            limit=None,
            expires_at=self._expiry(index),
            now=now,
        )

    def try_withdraw(self, key: str, now: float) -> bool:
        """Take one retry (or hedge) from ``key``'s budget; False, leaving the budget as it
        was, when recent traffic has not earned one."""
        return run(self.backend, self.try_withdraw_flow(key, now))

    def try_withdraw_flow(self, key: str, now: float) -> Flow[bool]:
        """``try_withdraw`` as a flow of backend operations."""
        index = self._slice(now)
        past = yield from self._spent(key, range(index - self.config.slices, index), now)
        added, _ = yield ops.counter_add(
            self._key(key, index),
            1.0,
            limit=self.config.reserve - past + _EPSILON,
            expires_at=self._expiry(index),
            now=now,
        )
        return bool(added)

    def refund(self, key: str, now: float) -> None:
        """Give back a retry taken with ``try_withdraw`` that was never sent (a hedge the
        primary made unnecessary)."""
        run(self.backend, self.refund_flow(key, now))

    def refund_flow(self, key: str, now: float) -> Flow[None]:
        """``refund`` as a flow of backend operations."""
        index = self._slice(now)
        yield ops.counter_add(
            self._key(key, index), -1.0, limit=None, expires_at=self._expiry(index), now=now
        )

    def balance(self, key: str, now: float) -> float:
        """Retries ``key`` could take now (fractional: 0.6 means not yet one)."""
        index = self._slice(now)
        spent = run(
            self.backend, self._spent(key, range(index - self.config.slices, index + 1), now)
        )
        return max(0.0, self.config.reserve - spent)

    # ---------------------------------------------------------------- slices

    def _slice(self, now: float) -> int:
        return math.floor(now / self.config.slice_s)

    def _expiry(self, index: int) -> float:
        # A slice is read by withdrawals up to ``slices`` slices after its own.
        return (index + self.config.slices + 1) * self.config.slice_s

    def _spent(self, key: str, indexes: range, now: float) -> Flow[float]:
        keys = [self._key(key, index) for index in indexes]
        totals: Mapping[str, float] = yield ops.counters_get(keys, now=now)
        return sum(totals.get(k, 0.0) for k in keys)

    @staticmethod
    def _key(key: str, index: int) -> str:
        return f"retry_budget:{key}:{index}"
