"""``UnavailableMarks``: deployments known to be missing, failed locally until a mark expires.

A 404 model-not-found means the vendor does not serve that model here (a retired snapshot, an
alias that exists in staging only, a region without it). Asking again is pointless and, with
retries, turns one mistake into a storm; so the engine marks the deployment unavailable for
``defaults.UNAVAILABLE_S`` and routes around it without touching the network until the mark
expires. A mark is one backend value (``unavailable:<key>``) expiring at its ``until``; a newer
mark only ever extends an existing one, so concurrent marks settle on the latest end.

A single 404 is not proof, though: vendors answer a stray 404 in an incident or while a model
rolls out across regions, and a minute's mark for it turns one bad answer into an outage. So
the engine counts 404s (``strike``: a backend counter ``unavailable:<key>:404s`` expiring
``defaults.UNAVAILABLE_S`` after the last one) and marks only from the
``defaults.UNAVAILABLE_STRIKES``-th, and only while nothing answered from the deployment in its
breaker's window. A 404 is never retried either way.
"""

from __future__ import annotations

import json
import math

import attrs

from guardedllm.errors import ArgumentError, scrub_secrets
from guardedllm.state import flow as ops
from guardedllm.state.base import StateBackend
from guardedllm.state.flow import Flow, run

__all__ = ["Mark", "UnavailableMarks"]

# Losing this many CAS races in a row means others keep writing later marks; theirs stand.
_CAS_TRIES = 4


@attrs.frozen(kw_only=True)
class Mark:
    """Why a deployment is unavailable, and until when (seconds on the guard's clock)."""

    until: float
    reason: str

    def encode(self) -> str:
        return json.dumps({"until": self.until, "reason": self.reason})

    @classmethod
    def decode(cls, raw: str) -> Mark | None:
        try:
            data = json.loads(raw)
            return cls(until=float(data["until"]), reason=str(data["reason"]))
        except (ValueError, TypeError, KeyError):
            return None  # not ours, or from an incompatible version: as if absent


class UnavailableMarks:
    """Marks over a ``StateBackend``; safe to call from many threads and tasks at once."""

    def __init__(self, backend: StateBackend) -> None:
        self.backend = backend

    def mark(self, key: str, *, until: float, reason: str, now: float) -> Mark:
        """Mark ``key`` unavailable until ``until``, unless it already is for longer; returns
        the mark in force. ``reason`` is shown to users: it is scrubbed of anything that looks
        like an API key."""
        return run(self.backend, self.mark_flow(key, until=until, reason=reason, now=now))

    def mark_flow(self, key: str, *, until: float, reason: str, now: float) -> Flow[Mark]:
        """``mark`` as a flow of backend operations (``guardedllm.state.flow``)."""
        if not math.isfinite(until):
            raise ArgumentError(f"a mark needs a finite end time; got until={until!r}")
        wanted = Mark(until=until, reason=scrub_secrets(reason))
        for _ in range(_CAS_TRIES):
            raw = yield ops.value_get(self._key(key), now=now)
            current = Mark.decode(raw) if raw is not None else None
            if current is not None and current.until >= until:
                return current
            if (
                yield ops.value_cas(self._key(key), raw, wanted.encode(), expires_at=until, now=now)
            ):
                return wanted
        return (yield from self.unavailable_flow(key, now)) or wanted

    def strike_flow(self, key: str, *, expires_at: float, now: float) -> Flow[int]:
        """Count one 404 from ``key``; the 404s counted until ``expires_at`` after the last
        one, this one included. A flow of backend operations."""
        total: float
        _, total = yield ops.counter_add(
            f"{self._key(key)}:404s", 1.0, limit=None, expires_at=expires_at, now=now
        )
        return round(total)

    def unavailable(self, key: str, now: float) -> Mark | None:
        """The mark on ``key`` if one is in force at ``now``."""
        return run(self.backend, self.unavailable_flow(key, now))

    def unavailable_flow(self, key: str, now: float) -> Flow[Mark | None]:
        """``unavailable`` as a flow of backend operations."""
        raw = yield ops.value_get(self._key(key), now=now)
        if raw is None:
            return None
        mark = Mark.decode(raw)
        return mark if mark is not None and now < mark.until else None

    def clear(self, key: str, now: float) -> None:
        """Lift any mark on ``key`` (after the registry or the vendor changed)."""
        run(self.backend, self._clear(key, now))

    def _clear(self, key: str, now: float) -> Flow[None]:
        for _ in range(_CAS_TRIES):
            raw = yield ops.value_get(self._key(key), now=now)
            if raw is None or (yield ops.value_cas(self._key(key), raw, None, now=now)):
                return

    @staticmethod
    def _key(key: str) -> str:
        return f"unavailable:{key}"
