"""Each ``StateBackend`` operation as a Redis script call, without I/O: the keys and arguments
it sends and how its reply decodes. The sync and async Redis backends share all of it and differ
only in how they send a call (``redis.Redis`` or ``redis.asyncio.Redis``).

Key layout (``KeyLayout``): ``<prefix><kind>:<key>``, one kind per operation family, so that a
bucket, a counter, a window and a value of the same name are apart, as in ``MemoryBackend``.
Counters are the one kind read several at a time (``counters_get``); their keys carry a Redis
Cluster hash tag, everything up to the key's last ``:``, so that the counters a guard reads
together (a retry budget's slices ``retry_budget:<deployment>:<n>``, a spend window's
``...:total`` and ``...:settled``) share a slot and one script can read them at once. Every other
script touches one key, which needs no tag, and keys of different deployments spread over the
cluster's nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import Any, Generic, TypeVar

import attrs

from guardedllm.state import flow
from guardedllm.state.base import BucketTake
from guardedllm.state.flow import Op

__all__ = ["KeyLayout", "Plan", "ScriptCall", "plan", "read_replies"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class ScriptCall(Generic[T]):
    """One run of the script named ``script`` (see ``_lua.SCRIPTS``), and how to read its
    reply."""

    script: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    decode: Callable[[Any], T]


@attrs.frozen
class KeyLayout:
    """Where a guard's key lives in Redis."""

    prefix: str

    def bucket(self, key: str) -> str:
        return f"{self.prefix}bucket:{key}"

    def counter(self, key: str) -> str:
        tag = counter_tag(key)
        return f"{self.prefix}counter:{{{tag}}}{key[len(tag) :]}"

    def window(self, key: str) -> str:
        return f"{self.prefix}window:{key}"

    def value(self, key: str) -> str:
        return f"{self.prefix}value:{key}"


def counter_tag(key: str) -> str:
    """The part of a counter's key that decides its cluster slot: up to its last ``:``."""
    tag, colon, _ = key.rpartition(":")
    return tag if colon else key


# --------------------------------------------------------------------------- arguments


def _number(x: float) -> str:
    # repr is the shortest text that parses back to the same double (also "inf", "nan").
    return repr(float(x))


def _text(raw: bytes | str) -> str:
    # A client made with decode_responses=True answers str; the default answers bytes.
    return raw.decode() if isinstance(raw, bytes) else raw


# --------------------------------------------------------------------------- token buckets


def _bucket_args(
    amount: float, capacity: float, refill_per_s: float, now: float
) -> tuple[str, ...]:
    return (_number(amount), _number(capacity), _number(refill_per_s), _number(now))


def _decode_take(reply: Sequence[Any]) -> BucketTake:
    granted, remaining, wait = reply
    return BucketTake(granted=granted == 1, remaining=float(remaining), wait_s=float(wait))


def bucket_take(
    keys: KeyLayout,
    key: str,
    amount: float,
    *,
    capacity: float,
    refill_per_s: float,
    now: float,
    allow_debt: bool,
) -> ScriptCall[BucketTake]:
    args = (*_bucket_args(amount, capacity, refill_per_s, now), "1" if allow_debt else "0")
    return ScriptCall(
        script="bucket_take", keys=(keys.bucket(key),), args=args, decode=_decode_take
    )


def bucket_put(
    keys: KeyLayout, key: str, amount: float, *, capacity: float, refill_per_s: float, now: float
) -> ScriptCall[float]:
    return ScriptCall(
        script="bucket_put",
        keys=(keys.bucket(key),),
        args=_bucket_args(amount, capacity, refill_per_s, now),
        decode=float,
    )


def _nothing(_: Any) -> None:
    return None


def bucket_set(
    keys: KeyLayout, key: str, level: float, *, capacity: float, refill_per_s: float, now: float
) -> ScriptCall[None]:
    return ScriptCall(
        script="bucket_set",
        keys=(keys.bucket(key),),
        args=_bucket_args(level, capacity, refill_per_s, now),
        decode=_nothing,
    )


# --------------------------------------------------------------------------- counters


def _decode_add(reply: Sequence[Any]) -> tuple[bool, float]:
    added, total = reply
    return added == 1, float(total)


def counter_add(
    keys: KeyLayout,
    key: str,
    amount: float,
    *,
    limit: float | None,
    expires_at: float,
    now: float,
) -> ScriptCall[tuple[bool, float]]:
    return ScriptCall(
        script="counter_add",
        keys=(keys.counter(key),),
        args=(
            _number(amount),
            "" if limit is None else _number(limit),
            _number(expires_at),
            _number(now),
        ),
        decode=_decode_add,
    )


def counters_get(
    keys: KeyLayout, names: Sequence[str], *, now: float
) -> list[ScriptCall[dict[str, float]]]:
    """One call per hash tag among ``names`` (one for every guard's read): keys in different
    cluster slots cannot be read by one script, and such a read is atomic per tag only."""
    groups: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        groups.setdefault(counter_tag(name), []).append(name)
    return [
        ScriptCall(
            script="counters_get",
            keys=tuple(keys.counter(name) for name in group),
            args=(_number(now),),
            decode=_totals_of(tuple(group)),
        )
        for group in groups.values()
    ]


def _totals_of(names: tuple[str, ...]) -> Callable[[Sequence[Any]], dict[str, float]]:
    def decode(reply: Sequence[Any]) -> dict[str, float]:
        return {name: float(total) for name, total in zip(names, reply, strict=True)}

    return decode


# --------------------------------------------------------------------------- windows


def _decode_totals(reply: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(total) for total in reply)


def window_add(
    keys: KeyLayout,
    key: str,
    amounts: tuple[float, ...],
    *,
    slice_index: int,
    slices: int,
    expires_at: float,
    now: float,
) -> ScriptCall[tuple[float, ...]]:
    return ScriptCall(
        script="window_add",
        keys=(keys.window(key),),
        args=(
            str(int(slice_index)),
            str(int(slices)),
            _number(expires_at),
            _number(now),
            *(_number(amount) for amount in amounts),
        ),
        decode=_decode_totals,
    )


def window_get(
    keys: KeyLayout, key: str, *, width: int, slice_index: int, slices: int, now: float
) -> ScriptCall[tuple[float, ...]]:
    return ScriptCall(
        script="window_get",
        keys=(keys.window(key),),
        args=(str(int(width)), str(int(slice_index)), str(int(slices)), _number(now)),
        decode=_decode_totals,
    )


# --------------------------------------------------------------------------- values


def _decode_value(reply: bytes | str | None) -> str | None:
    return None if reply is None else _text(reply)


def value_get(keys: KeyLayout, key: str, *, now: float) -> ScriptCall[str | None]:
    return ScriptCall(
        script="value_get", keys=(keys.value(key),), args=(_number(now),), decode=_decode_value
    )


def _decode_flag(reply: int) -> bool:
    return reply == 1


def value_cas(
    keys: KeyLayout,
    key: str,
    expected: str | None,
    value: str | None,
    *,
    expires_at: float | None,
    now: float,
) -> ScriptCall[bool]:
    return ScriptCall(
        script="value_cas",
        keys=(keys.value(key),),
        args=(
            _number(now),
            "0" if expected is None else "1",
            expected or "",
            "0" if value is None else "1",
            value or "",
            "" if expires_at is None else _number(expires_at),
        ),
        decode=_decode_flag,
    )


# --------------------------------------------------------------------------- batches


@attrs.frozen
class Plan:
    """The script calls of one operation of a batch, and how their replies make its result
    (one call for every operation but ``counters_get``, which reads each hash tag apart)."""

    calls: tuple[ScriptCall[Any], ...]
    merge: bool  # counters_get: the calls' results are dicts to merge


def plan(keys: KeyLayout, op: Op) -> Plan:
    """``op`` (a ``StateBackend`` operation as data, ``guardedllm.state.flow``) as script
    calls."""
    builders = _builders(keys)
    if op.name == "counters_get":
        return Plan(tuple(flow.call(builders, op)), merge=True)
    return Plan((flow.call(builders, op),), merge=False)


def read_replies(
    plans: Sequence[Plan],
    replies: Sequence[Any],
    refused: Callable[[Exception], Exception],
) -> list[Any]:
    """Each planned operation's result, in order, from the replies to all their calls; for an
    operation with a call the server refused, ``refused(that error reply)``."""
    outcomes: list[Any] = []
    position = 0
    for each in plans:
        parts = []
        failure: Exception | None = None
        for call in each.calls:
            reply = replies[position]
            position += 1
            if isinstance(reply, Exception):
                failure = failure or refused(reply)
            else:
                parts.append(call.decode(reply))
        if failure is not None:
            outcomes.append(failure)
        elif each.merge:
            merged: dict[str, float] = {}
            for part in parts:
                merged.update(part)
            outcomes.append(merged)
        else:
            outcomes.append(parts[0])
    return outcomes


@lru_cache(maxsize=64)
def _builders(keys: KeyLayout) -> _Builders:
    return _Builders(keys)


class _Builders:
    """The script builders above over one key layout, with ``StateBackend``'s signatures (so
    that ``flow.call`` can call them as it calls a backend)."""

    def __init__(self, keys: KeyLayout) -> None:
        self.bucket_take = partial(bucket_take, keys)
        self.bucket_put = partial(bucket_put, keys)
        self.bucket_set = partial(bucket_set, keys)
        self.counter_add = partial(counter_add, keys)
        self.counters_get = partial(counters_get, keys)
        self.window_add = partial(window_add, keys)
        self.window_get = partial(window_get, keys)
        self.value_get = partial(value_get, keys)
        self.value_cas = partial(value_cas, keys)
