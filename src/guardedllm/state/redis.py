"""Guard state shared by every process of a service, on one Redis.

``RedisBackend`` (over a ``redis.Redis``) implements ``StateBackend`` with the semantics of
``MemoryBackend``, each operation one atomic Lua script run by SHA (``EVALSHA``; redis-py's
``Script`` loads it again when the server answers NOSCRIPT, after a restart or a SCRIPT FLUSH).
``RedisBackend.run_batch`` sends several operations as one pipeline (one round trip), which is
how a client's guards send each round of a phase (``guardedllm.state.flow``).
``AsyncRedisBackend`` (over a ``redis.asyncio.Redis``, asyncio only) runs the same scripts with
the same operations as coroutines, one round trip each. Both build each call with
``_redis_ops`` (keys, arguments, decoding) and differ only in how they send it.

Every key the scripts write expires (see ``_lua.py``), so a removed deployment or budget leaves
nothing behind for long. Failures of the store (no connection, no answer within ``timeout_s``,
credentials refused) raise ``guardedllm.errors.StateError``, whose message names the store by
address and key prefix, never by password.

``clock()`` is the server's time as estimated in this process (see ``_server_clock.py``): the
one clock all hosts' guards should use with a shared backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.exceptions
import redis.retry
from redis.exceptions import NoScriptError

from guardedllm import defaults
from guardedllm.errors import ArgumentTypeError
from guardedllm.state import _redis_ops as ops
from guardedllm.state._lua import SCRIPTS
from guardedllm.state._redis_connect import Failures, connection, describe, state_error
from guardedllm.state._server_clock import ServerClock
from guardedllm.state.base import BucketTake
from guardedllm.state.flow import Op

if TYPE_CHECKING:
    from guardedllm.state.base import StateBackend

__all__ = ["AsyncRedisBackend", "RedisBackend"]

T = TypeVar("T")

# No retries inside redis-py (whose default since 6.0 is ten, with backoff of up to ten seconds):
# a state operation is not idempotent (a counter added twice when a connection dropped after
# the server ran the script), and a guard must not wait past timeout_s. A failure is a
# StateError; the next call takes a fresh connection.
_NO_RETRIES = 0


class _Shared:
    """What both backends hold: the key layout, the store's description and the clock."""

    # Every operation is a round trip, and the store's clock is the guards' clock (base.py).
    shared: ClassVar[bool] = True

    def __init__(self, client: Any, key_prefix: str) -> None:
        if not isinstance(key_prefix, str):
            raise ArgumentTypeError(f"key_prefix must be a str; got {key_prefix!r}")
        pool = client.connection_pool
        self._keys = ops.KeyLayout(key_prefix)
        self._store = describe(pool.connection_kwargs, pool.connection_class, key_prefix)
        self._failures = Failures(self._store)
        self._clock = ServerClock(resync_s=defaults.STATE_CLOCK_SYNC_S)
        self._owns_client = False
        # How long one operation may wait for the store (from_url's timeout_s); None for a
        # client given to the constructor, whose timeouts are its owner's.
        self.timeout_s: float | None = None

    @property
    def key_prefix(self) -> str:
        return self._keys.prefix

    @property
    def clock_error_s(self) -> float:
        """Half the round trip of the last clock measurement: how far ``clock()`` may be from
        the server's time at that moment (drift since then comes on top)."""
        return self._clock.error_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store})"


class RedisBackend(_Shared):
    """``StateBackend`` on Redis, for every process of a service to share. Safe to use from
    many threads (redis-py's client pools its connections)."""

    def __init__(self, client: redis.Redis, *, key_prefix: str = defaults.STATE_KEY_PREFIX) -> None:
        """Use ``client`` (yours to close; its timeouts and retries apply: redis-py 6+ retries
        a command after a connection error by default, which can apply a state operation
        twice). Every key starts with ``key_prefix``."""
        super().__init__(client, key_prefix)
        self._client = client
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}
        self._clock_lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        password_env: str | None = None,
        key_prefix: str = defaults.STATE_KEY_PREFIX,
        timeout_s: float = defaults.STATE_TIMEOUT_S,
    ) -> RedisBackend:
        """A backend with a client of its own (``close()`` closes it) for a ``redis://``,
        ``rediss://`` or ``unix://`` URL. A password never goes in the URL: name the
        environment variable that holds it in ``password_env``. Each operation waits at most
        ``timeout_s`` for a free connection (of ``defaults.STATE_MAX_CONNECTIONS``), as long to
        connect and as long again for its answer. Connects on first use."""
        how = connection(url, password_env=password_env, timeout_s=timeout_s)
        pool = redis.BlockingConnectionPool.from_url(
            how.url,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), _NO_RETRIES),
            **how.pool_options,
        )
        backend = cls(redis.Redis.from_pool(pool), key_prefix=key_prefix)
        backend._owns_client = True
        backend.timeout_s = timeout_s
        return backend

    def close(self) -> None:
        """Close the client ``from_url`` made (a client you passed in stays open)."""
        if self._owns_client:
            self._client.close()

    def ping(self) -> float:
        """The round trip to Redis, in seconds; ``StateError`` when it does not answer."""
        started = time.perf_counter()
        with self._failures:
            self._client.ping()
        return time.perf_counter() - started

    def clock(self) -> float:
        """The Redis server's time now (Unix seconds), as estimated here: ``time.time()`` plus
        an offset measured with ``TIME`` at the midpoint of its round trip, measured again
        every ``defaults.STATE_CLOCK_SYNC_S``. Off by at most half that round trip
        (``clock_error_s``) plus the drift between the two clocks since the measurement."""
        estimate = self._clock.read()
        if estimate is not None:
            return estimate
        with self._clock_lock:
            estimate = self._clock.read()  # another thread may have measured meanwhile
            if estimate is None:
                sent_at = self._clock.local()
                with self._failures:
                    server_time = self._client.time()
                estimate = self._clock.measured(sent_at, server_time, self._clock.local())
        return estimate

    def _run(self, call: ops.ScriptCall[T]) -> T:
        with self._failures:
            reply = self._scripts[call.script](keys=call.keys, args=call.args)
        return call.decode(reply)

    def run_batch(self, batch: Sequence[Op]) -> list[Any]:
        """Run ``batch`` (``guardedllm.state.flow``) in one round trip: a pipeline of
        ``EVALSHA``, not a transaction (each script is atomic; a batch holds independent
        operations, run by the server in order). Each operation's result, or its
        ``StateError`` when the server refused that one; ``StateError`` for the whole batch
        when the store cannot be reached or does not answer. Scripts the server lost (a
        restart, ``SCRIPT FLUSH``) are loaded and only the operations that found them missing
        sent again, in one more round trip."""
        plans = [ops.plan(self._keys, op) for op in batch]
        calls = [call for plan in plans for call in plan.calls]
        with self._failures:
            replies = self._send(calls)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                again = self._send([calls[i] for i in missing], load=True)
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        return ops.read_replies(plans, replies, self._refused)

    def _refused(self, reply: Exception) -> Exception:
        """What an operation the server refused raises: a ``StateError`` for redis-py's
        error replies."""
        if isinstance(reply, redis.exceptions.RedisError):
            return state_error(reply, self._store)
        return reply

    def _send(self, calls: list[ops.ScriptCall[Any]], *, load: bool = False) -> list[Any]:
        """The replies to ``calls``, sent as one pipeline (after loading their scripts, with
        ``load``); a reply the server refused is its exception."""
        with self._client.pipeline(transaction=False) as pipe:
            if load:
                for name in dict.fromkeys(call.script for call in calls):
                    pipe.script_load(SCRIPTS[name])
            for call in calls:
                pipe.evalsha(self._scripts[call.script].sha, len(call.keys), *call.keys, *call.args)
            replies: list[Any] = pipe.execute(raise_on_error=False)
        if load:
            replies = replies[len(replies) - len(calls) :]
        return replies

    # ---- StateBackend (see base.py for what each operation means) --------------------

    def bucket_take(
        self,
        key: str,
        amount: float,
        *,
        capacity: float,
        refill_per_s: float,
        now: float,
        allow_debt: bool = False,
    ) -> BucketTake:
        return self._run(
            ops.bucket_take(
                self._keys,
                key,
                amount,
                capacity=capacity,
                refill_per_s=refill_per_s,
                now=now,
                allow_debt=allow_debt,
            )
        )

    def bucket_put(
        self, key: str, amount: float, *, capacity: float, refill_per_s: float, now: float
    ) -> float:
        return self._run(
            ops.bucket_put(
                self._keys, key, amount, capacity=capacity, refill_per_s=refill_per_s, now=now
            )
        )

    def bucket_set(
        self, key: str, level: float, *, capacity: float, refill_per_s: float, now: float
    ) -> None:
        self._run(
            ops.bucket_set(
                self._keys, key, level, capacity=capacity, refill_per_s=refill_per_s, now=now
            )
        )

    def counter_add(
        self, key: str, amount: float, *, limit: float | None, expires_at: float, now: float
    ) -> tuple[bool, float]:
        return self._run(
            ops.counter_add(self._keys, key, amount, limit=limit, expires_at=expires_at, now=now)
        )

    def counters_get(self, keys: list[str], *, now: float) -> Mapping[str, float]:
        totals: dict[str, float] = {}
        for call in ops.counters_get(self._keys, keys, now=now):
            group = self._run(call)
            totals.update(group)
        return totals

    def window_add(
        self,
        key: str,
        amounts: tuple[float, ...],
        *,
        slice_index: int,
        slices: int,
        expires_at: float,
        now: float,
    ) -> tuple[float, ...]:
        return self._run(
            ops.window_add(
                self._keys,
                key,
                amounts,
                slice_index=slice_index,
                slices=slices,
                expires_at=expires_at,
                now=now,
            )
        )

    def window_get(
        self, key: str, *, width: int, slice_index: int, slices: int, now: float
    ) -> tuple[float, ...]:
        return self._run(
            ops.window_get(
                self._keys, key, width=width, slice_index=slice_index, slices=slices, now=now
            )
        )

    def value_get(self, key: str, *, now: float) -> str | None:
        return self._run(ops.value_get(self._keys, key, now=now))

    def value_cas(
        self,
        key: str,
        expected: str | None,
        value: str | None,
        *,
        expires_at: float | None = None,
        now: float,
    ) -> bool:
        return self._run(
            ops.value_cas(self._keys, key, expected, value, expires_at=expires_at, now=now)
        )


class AsyncRedisBackend(_Shared):
    """``RedisBackend``'s operations as coroutines, over ``redis.asyncio`` (asyncio only). The
    same scripts, keys and semantics: the two can share one Redis and key prefix."""

    def __init__(
        self, client: redis.asyncio.Redis, *, key_prefix: str = defaults.STATE_KEY_PREFIX
    ) -> None:
        """Use ``client`` (yours to close, with its own timeouts and retries; see
        ``RedisBackend``). Every key starts with ``key_prefix``."""
        super().__init__(client, key_prefix)
        self._client = client
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        password_env: str | None = None,
        key_prefix: str = defaults.STATE_KEY_PREFIX,
        timeout_s: float = defaults.STATE_TIMEOUT_S,
    ) -> AsyncRedisBackend:
        """As ``RedisBackend.from_url``; ``aclose()`` closes the client it makes."""
        how = connection(url, password_env=password_env, timeout_s=timeout_s)
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            how.url,
            retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), _NO_RETRIES),
            **how.pool_options,
        )
        backend = cls(redis.asyncio.Redis.from_pool(pool), key_prefix=key_prefix)
        backend._owns_client = True
        return backend

    async def aclose(self) -> None:
        """Close the client ``from_url`` made (a client you passed in stays open)."""
        if self._owns_client:
            await self._client.aclose()

    async def ping(self) -> float:
        """As ``RedisBackend.ping``."""
        started = time.perf_counter()
        with self._failures:
            await self._client.ping()
        return time.perf_counter() - started

    async def clock(self) -> float:
        """As ``RedisBackend.clock`` (a round trip only when a measurement is due)."""
        estimate = self._clock.read()
        if estimate is None:
            sent_at = self._clock.local()
            with self._failures:
                server_time = await self._client.time()
            estimate = self._clock.measured(sent_at, server_time, self._clock.local())
        return estimate

    async def _run(self, call: ops.ScriptCall[T]) -> T:
        with self._failures:
            reply = await self._scripts[call.script](keys=call.keys, args=call.args)
        return call.decode(reply)

    # ---- StateBackend's operations, awaited ----------------------------------------------

    async def bucket_take(
        self,
        key: str,
        amount: float,
        *,
        capacity: float,
        refill_per_s: float,
        now: float,
        allow_debt: bool = False,
    ) -> BucketTake:
        return await self._run(
            ops.bucket_take(
                self._keys,
                key,
                amount,
                capacity=capacity,
                refill_per_s=refill_per_s,
                now=now,
                allow_debt=allow_debt,
            )
        )

    async def bucket_put(
        self, key: str, amount: float, *, capacity: float, refill_per_s: float, now: float
    ) -> float:
        return await self._run(
            ops.bucket_put(
                self._keys, key, amount, capacity=capacity, refill_per_s=refill_per_s, now=now
            )
        )

    async def bucket_set(
        self, key: str, level: float, *, capacity: float, refill_per_s: float, now: float
    ) -> None:
        await self._run(
            ops.bucket_set(
                self._keys, key, level, capacity=capacity, refill_per_s=refill_per_s, now=now
            )
        )

    async def counter_add(
        self, key: str, amount: float, *, limit: float | None, expires_at: float, now: float
    ) -> tuple[bool, float]:
        return await self._run(
            ops.counter_add(self._keys, key, amount, limit=limit, expires_at=expires_at, now=now)
        )

    async def counters_get(self, keys: list[str], *, now: float) -> Mapping[str, float]:
        totals: dict[str, float] = {}
        for call in ops.counters_get(self._keys, keys, now=now):
            group = await self._run(call)
            totals.update(group)
        return totals

    async def window_add(
        self,
        key: str,
        amounts: tuple[float, ...],
        *,
        slice_index: int,
        slices: int,
        expires_at: float,
        now: float,
    ) -> tuple[float, ...]:
        return await self._run(
            ops.window_add(
                self._keys,
                key,
                amounts,
                slice_index=slice_index,
                slices=slices,
                expires_at=expires_at,
                now=now,
            )
        )

    async def window_get(
        self, key: str, *, width: int, slice_index: int, slices: int, now: float
    ) -> tuple[float, ...]:
        return await self._run(
            ops.window_get(
                self._keys, key, width=width, slice_index=slice_index, slices=slices, now=now
            )
        )

    async def value_get(self, key: str, *, now: float) -> str | None:
        return await self._run(ops.value_get(self._keys, key, now=now))

    async def value_cas(
        self,
        key: str,
        expected: str | None,
        value: str | None,
        *,
        expires_at: float | None = None,
        now: float,
    ) -> bool:
        return await self._run(
            ops.value_cas(self._keys, key, expected, value, expires_at=expires_at, now=now)
        )


if TYPE_CHECKING:
    _conforms: type[StateBackend] = RedisBackend  # mypy checks the protocol is met
