"""Where guard state lives: breaker windows, retry budgets, rate-limit buckets, spend counters
and unavailable-model marks. In memory by default; a shared store for many processes implements
the same ``StateBackend`` operations atomically."""

from guardedllm.state.base import BucketTake, StateBackend
from guardedllm.state.memory import MemoryBackend

__all__ = ["BucketTake", "MemoryBackend", "StateBackend"]
