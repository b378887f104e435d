"""Requests-per-minute and tokens-per-minute limits per deployment, as two token buckets.

Each limit is a bucket holding up to one minute's allowance (capacity = the limit) and refilling
at limit / 60 per second, so a deployment can burst a full minute's worth and then runs at its
rate. The caller counts tokens with the deployment's own tokenizer — input plus the output it
reserves (max_tokens) — and corrects the count once the vendor reports usage; the limiter only
takes numbers.

Rules, which the tests check on virtual time, under hypothesis and with real threads:

- ``acquire`` takes from both buckets or from neither: a refused caller holds nothing, sleeps
  ``wait_s`` and calls ``acquire`` again, so waiting never counts a request twice.
- Each take is one atomic ``bucket_take``; the two go to the backend together (one batch), and
  the one granted beside a refused one is put straight back. Concurrent callers therefore never
  get more than the buckets hold; one may see the other's take in passing and wait a little
  longer than needed.
- A request for more tokens than a whole minute's allowance can never be served: it is refused
  with ``wait_s = inf`` and nothing is taken.
- A 429's Retry-After ``pause``s every caller of the deployment, for as long as the vendor asked
  but never longer than the cap the caller passes (``RetryAfter.honour``): a vendor that asks
  for days (``Retry-After: 999999``, a date in year 9999) must not park a deployment for days.
- ``learn`` reads the vendor's own count from response headers and only ever lowers a bucket to
  it (another client sharing the vendor account spends from the same limit; our count already
  holds requests sent after that response was counted). When config sets no limit, the vendor's
  limit is adopted until ``defaults.LEARNED_LIMIT_TTL_S`` passes without a response reporting it.

``now`` is the engine's monotonic clock; ``wall_now`` (Unix time) only reads Anthropic's absolute
reset times. State keys: ``ratelimit:<deployment>:requests`` and ``...:tokens`` (buckets),
``...:requests:limit`` and ``...:tokens:limit`` (adopted vendor limits), ``...:paused-until``
(a Retry-After in force).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError, RateLimitedError
from guardedllm.guards._vendor_limits import VendorLimit, VendorLimits, read_limits
from guardedllm.state import flow as ops
from guardedllm.state.base import BucketTake, StateBackend
from guardedllm.state.flow import Flow, Op, lockstep, run

__all__ = ["RateDecision", "RateLimiter", "RetryAfter", "VendorPause"]

Kind = Literal["requests", "tokens"]

_MINUTE_S = 60.0
# Waits are rounded up by this much, so that sleeping exactly ``wait_s`` always finds the
# tokens there despite float rounding in the refill arithmetic.
_WAIT_MARGIN_S = 1e-6


@attrs.frozen(kw_only=True)
class RateDecision:
    """Whether a request may be sent now. When not, ``wait_s`` is how long until both buckets
    could serve it (``inf``: never, see ``reason``); ``limited_by`` names the bucket that
    refused."""

    granted: bool
    wait_s: float = 0.0
    limited_by: Literal["rpm", "tpm", "retry-after"] | None = None
    reason: str = ""

    def error(self, *, deployment: str, deadline_left_s: float | None = None) -> RateLimitedError:
        """The error for a caller that cannot wait ``wait_s`` (its deadline has
        ``deadline_left_s`` left)."""
        if math.isinf(self.wait_s):
            detail = self.reason
        else:
            left = (
                f", more than the {deadline_left_s:.3g} s left of the call's deadline"
                if deadline_left_s is not None
                else ""
            )
            detail = (
                f"{self.reason} The next slot is {self.wait_s:.3g} s away{left}. Raise the "
                "limit with the provider and in config, spread the load over more deployments, "
                "or allow a longer deadline."
            )
        what = "the provider's Retry-After" if self.limited_by == "retry-after" else "local"
        limit = "" if self.limited_by == "retry-after" else f" {self.limited_by} limit"
        return RateLimitedError(
            f"{deployment}: {what}{limit}: {detail} Nothing was sent.",
            retry_after=None if math.isinf(self.wait_s) else self.wait_s,
            deployment=deployment,
        )


_GRANTED = RateDecision(granted=True)


@attrs.frozen(kw_only=True)
class RetryAfter:
    """A vendor's Retry-After as the guards honour it: ``asked_s`` is the wait the vendor asked
    for, ``wait_s`` the wait kept, which is ``asked_s`` up to the cap and the cap beyond it."""

    asked_s: float
    wait_s: float

    @property
    def capped(self) -> bool:
        """Whether the vendor asked for more than the cap (and got the cap)."""
        return self.wait_s < self.asked_s

    @classmethod
    def honour(cls, asked_s: float | None, *, cap_s: float) -> RetryAfter | None:
        """The wait to keep for a vendor that asked for ``asked_s`` (None: it asked for none):
        at most ``cap_s``. A wait that is no number of seconds (nan, negative) is no wait."""
        if not cap_s > 0:
            raise ArgumentError(f"cap_s must be > 0 seconds; got {cap_s!r}")
        if asked_s is None or not asked_s >= 0:
            return None
        return cls(asked_s=asked_s, wait_s=min(asked_s, cap_s))


@attrs.frozen(kw_only=True)
class VendorPause:
    """A 429's Retry-After holding every call to a deployment back until ``until`` (on the
    guards' clock): ``retry_after`` says what the vendor asked for and what is kept."""

    until: float
    retry_after: RetryAfter

    def encode(self) -> str:
        wait = self.retry_after
        return json.dumps({"until": self.until, "asked_s": wait.asked_s, "wait_s": wait.wait_s})

    @classmethod
    def decode(cls, raw: str) -> VendorPause | None:
        try:
            data = json.loads(raw)
            wait = RetryAfter(asked_s=float(data["asked_s"]), wait_s=float(data["wait_s"]))
            return cls(until=float(data["until"]), retry_after=wait)
        except (ValueError, TypeError, KeyError):
            return None  # not ours, or from an incompatible version: as if absent


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 1):
        raise ArgumentError(f"{name} must be a positive number per minute, or None; got {value!r}")


def _check_tokens(name: str, value: int) -> None:
    if value < 0:
        raise ArgumentError(f"{name} must be >= 0; got {value!r}")


class RateLimiter:
    """rpm and tpm buckets per deployment key, in ``backend``. Limits are passed on every call
    (config may change); a limit of None uses the vendor's learned one, or no limit."""

    def __init__(self, backend: StateBackend) -> None:
        self._backend = backend

    def pause(self, key: str, retry_after: RetryAfter, *, now: float) -> VendorPause:
        """Hold every caller of ``key`` back for ``retry_after.wait_s`` from ``now``: the vendor
        answered 429 with a Retry-After, which speaks for the deployment, not only for the
        caller that got it. A later, longer pause wins; a shorter one never cuts a longer one
        short. Returns the pause in force."""
        return run(self._backend, self.pause_flow(key, retry_after, now=now))

    def pause_flow(self, key: str, retry_after: RetryAfter, *, now: float) -> Flow[VendorPause]:
        """``pause`` as a flow of backend operations (``guardedllm.state.flow``)."""
        name = _pause_key(key)
        wanted = VendorPause(until=now + retry_after.wait_s, retry_after=retry_after)
        if not math.isfinite(wanted.until):
            raise ArgumentError(f"a pause needs a finite wait; got {retry_after!r}")
        for _ in range(4):  # a bounded compare-and-set loop; losing means a newer pause landed
            current = yield ops.value_get(name, now=now)
            held = VendorPause.decode(current) if current is not None else None
            if held is not None and held.until >= wanted.until:
                return held
            if (
                yield ops.value_cas(
                    name, current, wanted.encode(), expires_at=wanted.until, now=now
                )
            ):
                return wanted
        return (yield from self._paused(key, now=now)) or wanted

    def paused(self, key: str, *, now: float) -> VendorPause | None:
        """The vendor's Retry-After holding ``key`` back at ``now``, if one is."""
        return run(self._backend, self._paused(key, now=now))

    def _paused(self, key: str, *, now: float) -> Flow[VendorPause | None]:
        return _pause_in_force((yield ops.value_get(_pause_key(key), now=now)), now)

    def acquire(
        self, key: str, *, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> RateDecision:
        """Take one request and ``tokens`` tokens for ``key``, or nothing and a wait."""
        return run(self._backend, self.acquire_flow(key, rpm=rpm, tpm=tpm, tokens=tokens, now=now))

    def acquire_flow(
        self, key: str, *, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> Flow[RateDecision]:
        """``acquire`` as a flow of backend operations. With both limits configured, the pause
        is read in the same batch as both takes (which go straight back if a pause is in
        force: a paused caller holds nothing); else the pause and the learned limits are read
        first, and the takes go in a second batch."""
        _check_limit("rpm", rpm)
        _check_limit("tpm", tpm)
        _check_tokens("tokens", tokens)
        pause = ops.value_get(_pause_key(key), now=now)
        if rpm is not None and tpm is not None and tokens <= tpm:
            found = yield [
                pause,
                self._take(key, "requests", 1, rpm, now),
                self._take(key, "tokens", tokens, tpm, now),
            ]
            paused = _pause_in_force(found[0], now)
            if paused is not None:
                granted = []
                if found[1].granted:
                    granted.append(self._put(key, "requests", 1, rpm, now))
                if found[2].granted:
                    granted.append(self._put(key, "tokens", tokens, tpm, now))
                if granted:
                    yield granted
                return self._paused_decision(paused, now)
            return (
                yield from self._decide(
                    key, rpm=rpm, tpm=tpm, tokens=tokens, now=now, slot=found[1], take=found[2]
                )
            )
        reads = [pause]
        if rpm is None:
            reads.append(ops.value_get(_value_key(key, "requests"), now=now))
        if tpm is None:
            reads.append(ops.value_get(_value_key(key, "tokens"), now=now))
        found = yield reads
        paused = _pause_in_force(found[0], now)
        if paused is not None:
            return self._paused_decision(paused, now)
        rpm = rpm if rpm is not None else _limit_of(found[1])
        tpm = tpm if tpm is not None else _limit_of(found[-1])
        if tpm is not None and tokens > tpm:
            return RateDecision(
                granted=False,
                wait_s=math.inf,
                limited_by="tpm",
                reason=f"this request needs {tokens} tokens (input plus max_tokens) but the "
                f"limit is {tpm} tokens per minute, so it can never be sent. Lower max_tokens, "
                "shorten the input, or route to a deployment with a higher tpm.",
            )
        takes = []
        if rpm is not None:
            takes.append(self._take(key, "requests", 1, rpm, now))
        if tpm is not None:
            takes.append(self._take(key, "tokens", tokens, tpm, now))
        if not takes:
            return _GRANTED
        taken: list[BucketTake] = yield takes
        slot = taken[0] if rpm is not None else None
        take = taken[-1] if tpm is not None else None
        return (
            yield from self._decide(
                key, rpm=rpm, tpm=tpm, tokens=tokens, now=now, slot=slot, take=take
            )
        )

    def _paused_decision(self, paused: VendorPause, now: float) -> RateDecision:
        return self._refused(
            "retry-after",
            paused.until - now,
            "the provider answered 429 and asked every caller to wait.",
        )

    def _decide(
        self,
        key: str,
        *,
        rpm: int | None,
        tpm: int | None,
        tokens: int,
        now: float,
        slot: BucketTake | None,
        take: BucketTake | None,
    ) -> Flow[RateDecision]:
        """The decision on the two takes, which went out together: one granted beside a
        refused one is put straight back, so a refused caller holds nothing."""
        if slot is not None and not slot.granted:
            wait = slot.wait_s
            if take is not None and tpm is not None:  # a wait long enough for both buckets
                level = take.remaining
                if take.granted:
                    level += tokens
                    yield self._put(key, "tokens", tokens, tpm, now)
                wait = max(wait, (tokens - level) / (tpm / _MINUTE_S))
            return self._refused("rpm", wait, f"no request is left of {rpm} per minute.")
        if take is not None and not take.granted:
            if rpm is not None:
                yield self._put(key, "requests", 1, rpm, now)
            return self._refused(
                "tpm",
                take.wait_s,
                f"{tokens} tokens needed, {max(0.0, take.remaining):.0f} of {tpm} per minute left.",
            )
        return _GRANTED

    def release(
        self, key: str, *, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> None:
        """Give back a granted ``acquire`` whose request was never sent: its request slot and
        its tokens."""
        run(self._backend, self.release_flow(key, rpm=rpm, tpm=tpm, tokens=tokens, now=now))

    def release_flow(
        self, key: str, *, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> Flow[None]:
        """``release`` as a flow of backend operations."""
        _check_limit("tpm", tpm)
        _check_tokens("tokens", tokens)
        kinds: tuple[tuple[Kind, int | None], ...] = (("requests", rpm), ("tokens", tpm))
        unknown = tuple(kind for kind, limit in kinds if limit is None)
        learned = yield from self._learned(key, unknown, now)
        rpm = rpm if rpm is not None else learned.get("requests")
        tpm = tpm if tpm is not None else learned.get("tokens")
        puts = []
        if rpm is not None:
            puts.append(self._put(key, "requests", 1, rpm, now))
        if tpm is not None and tokens:
            puts.append(self._put(key, "tokens", tokens, tpm, now))
        if puts:
            yield puts

    def correct(
        self, key: str, *, tpm: int | None, reserved_tokens: int, actual_tokens: int, now: float
    ) -> None:
        """Replace a reservation of ``reserved_tokens`` by the ``actual_tokens`` used: return
        the difference, or take the excess even if that leaves the bucket in debt (the tokens
        were spent; later requests wait for them)."""
        run(
            self._backend,
            self.correct_flow(
                key, tpm=tpm, reserved_tokens=reserved_tokens, actual_tokens=actual_tokens, now=now
            ),
        )

    def correct_flow(
        self, key: str, *, tpm: int | None, reserved_tokens: int, actual_tokens: int, now: float
    ) -> Flow[None]:
        """``correct`` as a flow of backend operations."""
        _check_limit("tpm", tpm)
        _check_tokens("reserved_tokens", reserved_tokens)
        _check_tokens("actual_tokens", actual_tokens)
        if actual_tokens == reserved_tokens:
            return
        if tpm is None:
            tpm = _limit_of((yield ops.value_get(_value_key(key, "tokens"), now=now)))
            if tpm is None:
                return
        if actual_tokens < reserved_tokens:
            yield self._put(key, "tokens", reserved_tokens - actual_tokens, tpm, now)
        else:
            yield self._take(key, "tokens", actual_tokens - reserved_tokens, tpm, now, debt=True)

    def learn(
        self,
        key: str,
        headers: Mapping[str, str],
        *,
        rpm: int | None,
        tpm: int | None,
        now: float,
        wall_now: float,
    ) -> VendorLimits:
        """Bring ``key``'s buckets down to what the vendor says is left (OpenAI ``x-ratelimit-*``
        or Anthropic ``anthropic-ratelimit-*`` headers), adopting the vendor's limit where
        config sets none. Returns what the headers said."""
        return run(
            self._backend,
            self.learn_flow(key, headers, rpm=rpm, tpm=tpm, now=now, wall_now=wall_now),
        )

    def learn_flow(
        self,
        key: str,
        headers: Mapping[str, str],
        *,
        rpm: int | None,
        tpm: int | None,
        now: float,
        wall_now: float,
    ) -> Flow[VendorLimits]:
        """``learn`` as a flow of backend operations (both buckets side by side)."""
        limits = read_limits(headers, wall_now=wall_now)
        yield from self.learn_limits_flow(key, limits, rpm=rpm, tpm=tpm, now=now)
        return limits

    def learn_limits_flow(
        self, key: str, limits: VendorLimits, *, rpm: int | None, tpm: int | None, now: float
    ) -> Flow[None]:
        """``learn_flow`` for headers already read (``read_limits``)."""
        _check_limit("rpm", rpm)
        _check_limit("tpm", tpm)
        if limits.requests is not None or limits.tokens is not None:
            yield lockstep(
                self._learn_one(key, "requests", limits.requests, rpm, now),
                self._learn_one(key, "tokens", limits.tokens, tpm, now),
            )

    # ---------------------------------------------------------------- pieces

    def _learn_one(
        self, key: str, kind: Kind, vendor: VendorLimit | None, configured: int | None, now: float
    ) -> Flow[None]:
        if vendor is None:
            return
        limit = configured
        adopt = limit is None and vendor.limit is not None and vendor.limit > 0
        if adopt:
            assert vendor.limit is not None
            limit = vendor.limit
        elif limit is None:
            limit = (yield from self._learned(key, (kind,), now)).get(kind)
        target = _vendor_level(vendor)
        # The level is read with a take of nothing; the adopted limit's current value (for
        # its compare-and-set) in the same batch.
        reads = []
        if limit is not None and target is not None:
            reads.append(self._take(key, kind, 0, limit, now))
        if adopt:
            reads.append(ops.value_get(_value_key(key, kind), now=now))
        if not reads:
            return
        found = yield reads
        writes = []
        if limit is not None and target is not None:
            level = found[0].remaining
            if level > target:
                # Taking the difference instead of setting the level keeps any take that lands
                # between these two batches: it came after the vendor's count and still counts.
                writes.append(self._take(key, kind, level - target, limit, now, debt=True))
        if adopt:
            # One compare-and-set, no retry loop: losing the race means another response has
            # just stored a limit as fresh as this one.
            writes.append(
                ops.value_cas(
                    _value_key(key, kind),
                    found[-1],
                    str(limit),
                    expires_at=now + defaults.LEARNED_LIMIT_TTL_S,
                    now=now,
                )
            )
        if writes:
            yield writes

    def _learned(
        self, key: str, kinds: tuple[Kind, ...], now: float
    ) -> Flow[dict[Kind, int | None]]:
        """The vendor limits adopted for ``kinds`` (None where there is none), read in one
        batch; no read at all for no kinds."""
        if not kinds:
            return {}
        stored = yield [ops.value_get(_value_key(key, kind), now=now) for kind in kinds]
        return {kind: _limit_of(raw) for kind, raw in zip(kinds, stored, strict=True)}

    @staticmethod
    def _take(
        key: str, kind: Kind, amount: float, limit: int, now: float, *, debt: bool = False
    ) -> Op:
        return ops.bucket_take(
            _bucket_key(key, kind),
            amount,
            capacity=limit,
            refill_per_s=limit / _MINUTE_S,
            now=now,
            allow_debt=debt,
        )

    @staticmethod
    def _put(key: str, kind: Kind, amount: float, limit: int, now: float) -> Op:
        return ops.bucket_put(
            _bucket_key(key, kind), amount, capacity=limit, refill_per_s=limit / _MINUTE_S, now=now
        )

    @staticmethod
    def _refused(
        limited_by: Literal["rpm", "tpm", "retry-after"], wait: float, reason: str
    ) -> RateDecision:
        return RateDecision(
            granted=False,
            wait_s=wait * (1 + 1e-9) + _WAIT_MARGIN_S,
            limited_by=limited_by,
            reason=reason,
        )


def _vendor_level(vendor: VendorLimit) -> float | None:
    """The level a vendor's report puts its bucket at now, or None if it does not say.

    ``remaining`` is what the vendor admits now. At zero, the reset says when it admits more:
    both vendors refill continuously and are full after ``reset_s``. Our bucket refills at
    limit / 60 per second; starting it at the limit less ``reset_s`` of that refill makes it
    full exactly when the vendor's is and never fuller before. That level is 0 for a limit that
    refills per minute, and a debt for one that refills slower (a daily quota, say).
    """
    if vendor.remaining is None:
        return None
    if vendor.remaining > 0 or vendor.limit is None or vendor.reset_s is None:
        return float(vendor.remaining)
    return min(0.0, vendor.limit * (1.0 - vendor.reset_s / _MINUTE_S))


def _pause_in_force(raw: str | None, now: float) -> VendorPause | None:
    pause = VendorPause.decode(raw) if raw is not None else None
    return pause if pause is not None and pause.until > now else None


def _limit_of(stored: str | None) -> int | None:
    """An adopted vendor limit as stored, or None (absent, or unreadable)."""
    if stored is None:
        return None
    try:
        limit = int(stored)
    except ValueError:
        return None
    return limit if limit > 0 else None


# State keys are the same on every call for a deployment: built once (a few per call).
@functools.lru_cache(maxsize=1024)
def _bucket_key(key: str, kind: Kind) -> str:
    return f"ratelimit:{quote(key, safe='')}:{kind}"


@functools.lru_cache(maxsize=1024)
def _pause_key(key: str) -> str:
    return f"ratelimit:{quote(key, safe='')}:paused-until"


@functools.lru_cache(maxsize=1024)
def _value_key(key: str, kind: Kind) -> str:
    return f"ratelimit:{quote(key, safe='')}:{kind}:limit"
