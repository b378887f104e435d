"""The circuit breaker's values: its config, the permits, transitions and snapshots it hands
out, and its stored state (one line of text per deployment). ``breaker.py`` holds the state
machine that moves them; see its docstring for the rules."""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import attrs

from guardedllm import defaults
from guardedllm._checks import require_number
from guardedllm.errors import ArgumentError

__all__ = [
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "Cause",
    "Outcome",
    "Permit",
    "State",
    "Transition",
    "TransitionReason",
    "closed_permit",
    "decoded",
    "state_key",
]

BreakerState = Literal["closed", "open", "half_open"]
Outcome = Literal["success", "failure", "ignored"]
TransitionReason = Literal[
    "failure_rate",  # closed -> open
    "slow_call_rate",  # closed -> open
    "open_elapsed",  # open -> half_open
    "probe_failed",  # half_open -> open
    "probes_slow",  # half_open -> open
    "probes_succeeded",  # half_open -> closed
]

_STATES: dict[str, BreakerState] = {"closed": "closed", "open": "open", "half_open": "half_open"}


# --------------------------------------------------------------------------- config


def _check(condition: bool, name: str, rule: str, value: object) -> None:
    if not condition:
        raise ArgumentError(f"BreakerConfig.{name} must be {rule}; got {value!r}")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    require_number("BreakerConfig", attribute.name, value)
    _check(value > 0 and not math.isnan(value), attribute.name, "> 0", value)


def _rate(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    require_number("BreakerConfig", attribute.name, value)
    _check(0 < value <= 1, attribute.name, "a fraction in (0, 1]", value)


def _at_least_one(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    require_number("BreakerConfig", attribute.name, value, whole=True)
    _check(value >= 1, attribute.name, ">= 1", value)


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """When a deployment's breaker opens and how it comes back. Rates are fractions
    (0.5 = half the calls in the window); ``slow_call_s`` may be ``math.inf`` to ignore
    latency."""

    window_s: float = attrs.field(default=defaults.BREAKER_WINDOW_S, validator=_positive)
    slices: int = attrs.field(default=defaults.WINDOW_SLICES, validator=_at_least_one)
    minimum_calls: int = attrs.field(
        default=defaults.BREAKER_MINIMUM_CALLS, validator=_at_least_one
    )
    failure_rate_threshold: float = attrs.field(
        default=defaults.BREAKER_FAILURE_RATE, validator=_rate
    )
    slow_call_s: float = attrs.field(default=defaults.BREAKER_SLOW_CALL_S, validator=_positive)
    slow_call_rate_threshold: float = attrs.field(
        default=defaults.BREAKER_SLOW_CALL_RATE, validator=_rate
    )
    open_s: float = attrs.field(default=defaults.BREAKER_OPEN_S, validator=_positive)
    backoff_multiplier: float = attrs.field(default=defaults.BREAKER_BACKOFF_MULTIPLIER)
    max_open_s: float = attrs.field(default=defaults.BREAKER_MAX_OPEN_S)
    open_jitter: float = attrs.field(default=defaults.BREAKER_OPEN_JITTER)
    half_open_probes: int = attrs.field(
        default=defaults.BREAKER_HALF_OPEN_PROBES, validator=_at_least_one
    )
    half_open_successes: int = attrs.field(
        default=defaults.BREAKER_HALF_OPEN_SUCCESSES, validator=_at_least_one
    )
    probe_timeout_s: float = attrs.field(
        default=defaults.BREAKER_PROBE_TIMEOUT_S, validator=_positive
    )
    throttle_k: float = attrs.field(default=defaults.BREAKER_THROTTLE_K)
    panic_every: int = attrs.field(default=defaults.BREAKER_PANIC_EVERY, validator=_at_least_one)

    @throttle_k.validator
    def _check_k(self, _: attrs.Attribute[float], value: float) -> None:
        require_number("BreakerConfig", "throttle_k", value)
        _check(
            1 <= value <= math.inf, "throttle_k", "a number >= 1 (math.inf: never refuse)", value
        )

    @backoff_multiplier.validator
    def _check_multiplier(self, _: attrs.Attribute[float], value: float) -> None:
        _check(1 <= value < math.inf, "backoff_multiplier", "a finite number >= 1", value)

    @max_open_s.validator
    def _check_max_open(self, _: attrs.Attribute[float], value: float) -> None:
        _check(
            self.open_s <= value < math.inf,
            "max_open_s",
            f"finite and >= open_s ({self.open_s})",
            value,
        )

    @open_jitter.validator
    def _check_jitter(self, _: attrs.Attribute[float], value: float) -> None:
        _check(0 <= value < 1, "open_jitter", "a fraction in [0, 1)", value)

    def open_interval(self, trips: int, random: float) -> float:
        """How long the breaker stays open after its ``trips``-th consecutive trip, given a
        uniform draw ``random`` in [0, 1)."""
        growth = 0
        if self.backoff_multiplier > 1:  # stop growing once past the cap (and before overflow)
            ceiling = math.log(self.max_open_s / self.open_s, self.backoff_multiplier)
            growth = min(trips - 1, math.ceil(ceiling))
        interval = min(self.max_open_s, self.open_s * self.backoff_multiplier**growth)
        return interval * (1 - self.open_jitter * random)


# --------------------------------------------------------------------------- values


_CAUSE_WORDS: dict[str, str] = {
    "failure_rate": "its failure rate",
    "slow_call_rate": "its slow-call rate",
    "probe_failed": "a failed half-open probe",
    "probes_slow": "slow half-open probes",
}


@attrs.frozen(kw_only=True)
class Cause:
    """Which threshold opened a breaker: ``reason`` is the opening transition's reason, with
    the measured ``rate`` and its ``threshold`` where one was measured (not for a failed
    probe). Stored with the state, so every process's refusal can name it."""

    reason: TransitionReason
    rate: float | None = None
    threshold: float | None = None

    def encode(self) -> str:
        if self.rate is None or self.threshold is None:
            return self.reason
        return f"{self.reason}:{self.rate!r}:{self.threshold!r}"

    @classmethod
    def decode(cls, raw: str) -> Cause | None:
        """The cause ``encode`` wrote; None for "" (no cause stored) or anything unreadable."""
        reason, *numbers = raw.split(":")
        if reason not in _CAUSE_WORDS or len(numbers) not in (0, 2):
            return None
        try:
            rate, threshold = (float(n) for n in numbers) if numbers else (None, None)
        except ValueError:
            return None
        return cls(reason=_REASONS[reason], rate=rate, threshold=threshold)

    def describe(self) -> str:
        """For an error message: "its failure rate (62 % of the calls in its window, at or
        above the 50 % threshold)"."""
        words = _CAUSE_WORDS[self.reason]
        if self.rate is None or self.threshold is None:
            return words
        what = "failed" if self.reason == "failure_rate" else "were slow"
        return (
            f"{words} ({self.rate:.0%} of the calls in its window {what}, at or above the "
            f"{self.threshold:.0%} threshold)"
        )


_REASONS: dict[str, TransitionReason] = {
    "failure_rate": "failure_rate",
    "slow_call_rate": "slow_call_rate",
    "probe_failed": "probe_failed",
    "probes_slow": "probes_slow",
}


@attrs.frozen(kw_only=True)
class Transition:
    """A change of a breaker's state, for span events, metrics and logs."""

    key: str
    from_state: BreakerState
    to_state: BreakerState
    reason: TransitionReason
    at: float


@attrs.frozen(kw_only=True)
class Permit:
    """The answer of ``acquire``. When ``allowed``, pass it back to ``record`` exactly once
    (with "ignored" if the call was abandoned); a probe permit holds a half-open slot until
    then. ``retry_in_s`` is when an open breaker will admit a probe (None when unknown, e.g.
    while half-open probes are in flight). ``transition`` is set when this acquire moved the
    breaker from open to half-open."""

    key: str
    allowed: bool
    probe: bool
    state: BreakerState
    retry_in_s: float | None = None
    transition: Transition | None = None
    # Which episode the permit belongs to, and (for a probe) the slot it holds.
    epoch: int = attrs.field(default=0, repr=False)
    window: int = attrs.field(default=0, repr=False)
    slot: str | None = attrs.field(default=None, repr=False)
    token: str | None = attrs.field(default=None, repr=False)
    # Why the breaker last opened (``Cause.encode``; "" when closed or unknown).
    cause: str = attrs.field(default="", repr=False)


@attrs.frozen(kw_only=True)
class BreakerSnapshot:
    """A breaker as ``client.health()`` shows it. The window counts are those of the last
    closed period (still sliding) while open or half-open."""

    key: str
    state: BreakerState
    calls: int
    failures: int
    slow_calls: int
    open_until: float | None
    trips: int
    cause: Cause | None = None  # why it last opened, while open or half-open

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_rate(self) -> float:
        return self.slow_calls / self.calls if self.calls else 0.0


@attrs.frozen(kw_only=True)
class State:
    """The stored state. ``epoch`` grows on every transition; ``window`` is the epoch at which
    the breaker last closed (the generation of its window counters); ``until`` is the end of
    the current open interval (kept through half-open for the snapshot)."""

    name: BreakerState
    epoch: int
    window: int
    trips: int
    until: float
    cause: str = ""  # why it last opened (``Cause.encode``), kept through half-open

    def encode(self) -> str:
        head = f"{self.name} {self.epoch} {self.window} {self.trips} {self.until!r}"
        return f"{head} {self.cause}" if self.cause else head

    @classmethod
    def decode(cls, raw: str | None) -> State:
        if raw is not None:
            try:
                # Five fields before the cause was stored: such a state decodes without one.
                name, epoch, window, trips, until, *cause = raw.split(" ")
                if name in _STATES and len(cause) <= 1:
                    return cls(
                        name=_STATES[name],
                        epoch=int(epoch),
                        window=int(window),
                        trips=int(trips),
                        until=float(until),
                        cause=cause[0] if cause else "",
                    )
            except ValueError:
                pass
        # Absent (never used), or written by something else: a fresh closed breaker. The
        # next transition CASes against the raw value, so it replaces an unreadable one.
        return cls(name="closed", epoch=0, window=0, trips=0, until=0.0)


# Every call reads the state; the few values a breaker goes through decode once (states are
# frozen, so one may be shared).
decoded = functools.lru_cache(maxsize=256)(State.decode)


@functools.lru_cache(maxsize=1024)
def closed_permit(key: str, epoch: int, window: int) -> Permit:
    """A closed breaker's permit: the same value for every call of one window, made once."""
    return Permit(key=key, allowed=True, probe=False, state="closed", epoch=epoch, window=window)


@functools.lru_cache(maxsize=1024)
def state_key(key: str) -> str:
    return f"breaker:{key}"
