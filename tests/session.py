"""One client across many calls, through any driver, for scenarios whose guard state lives in
the client (spend budgets, rate limits, breakers).

``support.make_call`` builds a new client per call; a ``Session`` keeps one. For the sync
driver it is a ``Client`` and concurrency is a thread pool over it; for asyncio and trio it is
an ``AsyncClient`` living in an event loop behind an anyio blocking portal, and concurrency is
one task per call in a task group. The test itself stays synchronous either way.

``VirtualClock`` is time that only moves when a call sleeps (or the test advances it), for
rate-limit waits measured exactly instead of slept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.errors import GuardedLLMError
from guardedllm.estimate import Estimate
from guardedllm.guards import SpendStatus
from guardedllm.types import ChatCompletion
from support import ENVIRON, Streamed, with_guard_state

T = TypeVar("T")

# Threads over one sync Client: enough to keep many calls in flight on 2 cores.
SYNC_WORKERS = 32

# How often ``many`` calls its ``during`` hook: often enough to catch a brief state, rarely
# enough to leave the cores to the calls.
_SAMPLE_EVERY_S = 0.002

Result = ChatCompletion | Streamed | GuardedLLMError


class VirtualClock:
    """A monotonic clock that advances only by ``sleep`` / ``asleep`` / ``advance``. Every
    sleep is recorded, so a test can assert what the guards waited for."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, f"time only moves forward; got {seconds}"
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()

    def client_kwargs(self, driver: str) -> dict[str, Any]:
        return {"clock": self.now, "sleep": self.sleep if driver == "sync" else self.asleep}


class Session:
    """One client of ``driver`` ("sync", "asyncio" or "trio") for the whole test."""

    def __init__(self, driver: str, client: Client | AsyncClient, portal: Any | None) -> None:
        self.driver = driver
        self.client = client
        self._portal = portal

    # ---------------------------------------------------------------- one call

    def create(self, **kwargs: Any) -> ChatCompletion | Streamed:
        """``client.chat.completions.create(**kwargs)``; a stream is read to its end."""
        if isinstance(self.client, Client):
            return _read_sync(self.client, kwargs)
        client = self.client
        return self.run_async(lambda: _read_async(client, kwargs))

    def outcome(self, **kwargs: Any) -> Result:
        """``create``, with a guardedllm error returned instead of raised."""
        try:
            return self.create(**kwargs)
        except GuardedLLMError as error:
            return error

    def estimate(self, **kwargs: Any) -> Estimate:
        if isinstance(self.client, Client):
            return self.client.estimate(**kwargs)
        client = self.client
        return self.run_async(lambda: client.estimate(**kwargs))

    def spend(self, **kwargs: Any) -> tuple[SpendStatus, ...]:
        return self.client.spend(**kwargs)

    # ---------------------------------------------------------------- many at once

    def many(
        self, count: int, *, during: Callable[[], None] | None = None, **kwargs: Any
    ) -> list[Result]:
        """``count`` identical calls at once; their results in completion order. ``during`` is
        called repeatedly (from the test's thread) until every call has ended."""
        if isinstance(self.client, Client):
            client = self.client
            with ThreadPoolExecutor(max_workers=SYNC_WORKERS) as pool:
                futures = [pool.submit(_outcome_sync, client, kwargs) for _ in range(count)]
                while during is not None and not all(f.done() for f in futures):
                    during()
                    time.sleep(_SAMPLE_EVERY_S)
                return [f.result() for f in futures]
        assert self._portal is not None
        future = self._portal.start_task_soon(_many_async, self.client, count, kwargs)
        while during is not None and not future.done():
            during()
            time.sleep(_SAMPLE_EVERY_S)
        results: list[Result] = future.result()
        return results

    def run_async(self, make: Callable[[], Any]) -> Any:
        """Await ``make()`` in the session's event loop (async drivers only) and return its
        result: for scenarios that need to act in the middle of a call, such as a stream."""
        assert self._portal is not None, "run_async is for the asyncio and trio drivers"

        async def run() -> Any:
            return await make()

        return self._portal.call(run)


@contextmanager
def open_session(
    driver: str, registry: Registry, *, policy: Policy | None = None, **client_kwargs: Any
) -> Iterator[Session]:
    """A ``Session`` over one new client, closed on exit. Backoff jitter is zero unless the
    test passes ``random=``."""
    client_kwargs.setdefault("environ", ENVIRON)
    client_kwargs.setdefault("random", lambda: 0.0)
    with_guard_state(client_kwargs)
    if driver == "sync":
        with Client(registry, policy=policy, **client_kwargs) as client:
            yield Session(driver, client, None)
        return
    with ExitStack() as stack:
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal(backend=driver))

        def build() -> AsyncClient:  # in the loop: the transport belongs to it
            return AsyncClient(registry, policy=policy, **client_kwargs)

        aclient: AsyncClient = portal.call(build)
        try:
            yield Session(driver, aclient, portal)
        finally:
            portal.call(aclient.aclose)


# ------------------------------------------------------------------------ the calls themselves


def _read_sync(client: Client, kwargs: dict[str, Any]) -> ChatCompletion | Streamed:
    result = client.chat.completions.create(**kwargs)
    if kwargs.get("stream"):
        with result:
            chunks = list(result)
        return Streamed(chunks, result.guard, result.completed)
    assert isinstance(result, ChatCompletion)
    return result


async def _read_async(client: AsyncClient, kwargs: dict[str, Any]) -> ChatCompletion | Streamed:
    result = await client.chat.completions.create(**kwargs)
    if kwargs.get("stream"):
        async with result:
            chunks = [chunk async for chunk in result]
        return Streamed(chunks, result.guard, result.completed)
    assert isinstance(result, ChatCompletion)
    return result


def _outcome_sync(client: Client, kwargs: dict[str, Any]) -> Result:
    try:
        return _read_sync(client, kwargs)
    except GuardedLLMError as error:
        return error


async def _many_async(client: AsyncClient, count: int, kwargs: dict[str, Any]) -> list[Result]:
    results: list[Result] = []

    async def one() -> None:
        try:
            results.append(await _read_async(client, kwargs))
        except GuardedLLMError as error:
            results.append(error)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return results
