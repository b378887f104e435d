"""Where guard state lives: breaker windows, retry budgets, rate-limit buckets, spend counters
and unavailable-model marks. In memory by default; a shared store for many processes implements
the same ``StateBackend`` operations atomically: ``RedisBackend`` (and ``AsyncRedisBackend``),
which load redis-py only when first named here. ``FailoverBackend`` is what a client puts
around a shared one: this process's own state while the store fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardedllm.state.base import BucketTake, StateBackend
from guardedllm.state.failover import FailoverBackend
from guardedllm.state.memory import MemoryBackend

if TYPE_CHECKING:
    from guardedllm.state.redis import AsyncRedisBackend, RedisBackend

__all__ = [
    "AsyncRedisBackend",
    "BucketTake",
    "FailoverBackend",
    "MemoryBackend",
    "RedisBackend",
    "StateBackend",
]

_REDIS = ("AsyncRedisBackend", "RedisBackend")


def __getattr__(name: str) -> Any:
    # redis-py is an optional extra (guardedllm[redis]), and importing it costs time that an
    # application without a shared backend should not pay.
    if name in _REDIS:
        try:
            from guardedllm.state import redis as backends
        except ImportError as error:
            if error.name is None or not error.name.startswith("redis"):
                raise
            raise ImportError(
                f"guardedllm.state.{name} needs redis-py: pip install 'guardedllm[redis]'",
                name=error.name,
            ) from error
        return getattr(backends, name)
    raise AttributeError(f"module 'guardedllm.state' has no attribute {name!r}")
