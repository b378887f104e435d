"""One client across many calls, through any driver, for the fault-injection scenarios.

A ``FaultSession`` keeps one client for a whole scenario, because what is under test (breaker,
retry budget, unavailable marks, the shared Retry-After pause) is guard state that lives in the
client. For the sync driver it is a ``Client`` and concurrency is a thread pool over it; for
asyncio and trio it is an ``AsyncClient`` living in an event loop behind an anyio blocking
portal, and concurrency is one task per call in a task group. The test stays synchronous.

What a scenario asserts is recorded here, not inferred from wall time:

- every call's ``Outcome``: its result or its guardedllm error, its attempts, its own elapsed
  time (measured inside the thread or task that ran it);
- every sleep the engine asked the driver for (``sleeps``), slept for real;
- every circuit-breaker transition (``transitions``), read from the ``guardedllm`` logger the
  engine reports them to, stamped with the session's clock.

``StepClock`` is engine time that moves only when the test advances it, so breaker intervals
and retry-budget windows are exact while HTTP stays real (httpx's timeouts use real time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

import anyio
import anyio.from_thread
import attrs

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.errors import GuardedLLMError
from guardedllm.guards import DeploymentHealth
from guardedllm.types import Attempt, ChatCompletion
from support import ENVIRON, Streamed

# Threads for calls started one by one with ``submit``: more than any scenario keeps in flight.
_SUBMIT_WORKERS = 16


@attrs.frozen
class Outcome:
    """One call as its caller saw it: the result or the error, and how long it took."""

    value: ChatCompletion | Streamed | None
    error: GuardedLLMError | None
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        if self.value is not None:
            assert self.value.guard is not None  # every answer from a client carries one
            return self.value.guard.attempts
        assert self.error is not None
        return self.error.attempts

    @property
    def deployment(self) -> str | None:
        """The deployment that answered (None for a failed call)."""
        return self.value.guard.deployment if self.value and self.value.guard else None

    @property
    def sent(self) -> int:
        """Attempts that reached the network (skipped deployments excluded)."""
        return sum(1 for a in self.attempts if a.outcome != "skipped")


@attrs.frozen
class Transition:
    """A breaker transition as the engine logged it, at the session clock's time."""

    deployment: str
    from_state: str
    to_state: str
    reason: str
    at: float


class StepClock:
    """Engine time that moves only by ``advance``: calls running at once all read the same
    instant, and a breaker interval or budget window lasts exactly as configured."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, f"time only moves forward; got {seconds}"
        with self._lock:
            self._now += seconds


class _TransitionLog(logging.Handler):
    """Collects the engine's "circuit breaker for %s: %s -> %s (%s)" records."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(logging.INFO)
        self._clock = clock
        self.seen: list[Transition] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "circuit breaker for %s: %s -> %s (%s)" and isinstance(record.args, tuple):
            deployment, from_state, to_state, reason = (str(a) for a in record.args)
            self.seen.append(Transition(deployment, from_state, to_state, reason, self._clock()))


class FaultSession:
    """One client of ``driver`` ("sync", "asyncio" or "trio") for a whole scenario."""

    def __init__(
        self,
        driver: str,
        client: Client | AsyncClient,
        portal: anyio.from_thread.BlockingPortal | None,
        *,
        sleeps: list[float],
        log: _TransitionLog,
    ) -> None:
        self.driver = driver
        self.client = client
        self.sleeps = sleeps
        self._portal = portal
        self._log = log
        self._pool = ThreadPoolExecutor(max_workers=_SUBMIT_WORKERS)

    @property
    def transitions(self) -> list[Transition]:
        return list(self._log.seen)

    def health(self, deployment: str) -> DeploymentHealth:
        return self.client.health()[deployment]

    # ---------------------------------------------------------------- calls

    def submit(self, **kwargs: Any) -> Future[Outcome]:
        """Start one call now and return at once; ``.result()`` waits for its outcome."""
        if isinstance(self.client, Client):
            return self._pool.submit(_run_sync, self.client, kwargs)
        assert self._portal is not None
        return self._portal.start_task_soon(_run_async, self.client, kwargs)

    def call(self, **kwargs: Any) -> Outcome:
        return self.submit(**kwargs).result()

    def gather(self, count: int, *, concurrency: int, **kwargs: Any) -> list[Outcome]:
        """``count`` identical calls, at most ``concurrency`` in flight at once; their
        outcomes in the order the calls were started."""
        if isinstance(self.client, Client):
            client = self.client
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                futures = [pool.submit(_run_sync, client, kwargs) for _ in range(count)]
                return [f.result() for f in futures]
        assert self._portal is not None
        outcomes: list[Outcome] = self._portal.call(
            _gather_async, self.client, count, concurrency, kwargs
        )
        return outcomes

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# What the ``sessions`` fixture gives a test: open a session (``open_session``'s keywords).
OpenSession = Callable[..., FaultSession]
# What the ``figures`` fixture gives a test: report measured figures as keywords.
Figures = Callable[..., None]


@contextmanager
def open_session(
    driver: str,
    registry: Registry,
    *,
    policy: Policy | None = None,
    clock: Callable[[], float] = time.monotonic,
    **client_kwargs: Any,
) -> Iterator[FaultSession]:
    """A ``FaultSession`` over one new client, closed on exit. Backoff jitter is zero unless
    the test passes ``random=``; every sleep is recorded and then slept for real."""
    client_kwargs.setdefault("environ", ENVIRON)
    client_kwargs.setdefault("random", lambda: 0.0)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    async def asleep(seconds: float) -> None:
        sleeps.append(seconds)
        await anyio.sleep(seconds)

    log = _TransitionLog(clock)
    logger = logging.getLogger("guardedllm")
    level = logger.level
    with ExitStack() as stack:
        logger.addHandler(log)
        logger.setLevel(logging.INFO)
        stack.callback(logger.setLevel, level)
        stack.callback(logger.removeHandler, log)
        portal: anyio.from_thread.BlockingPortal | None = None
        client: Client | AsyncClient
        if driver == "sync":
            client = stack.enter_context(
                Client(registry, policy=policy, clock=clock, sleep=sleep, **client_kwargs)
            )
        else:
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal(backend=driver))

            def build() -> AsyncClient:  # in the loop: its transport belongs to that loop
                return AsyncClient(
                    registry, policy=policy, clock=clock, sleep=asleep, **client_kwargs
                )

            client = portal.call(build)
            stack.callback(portal.call, client.aclose)
        session = FaultSession(driver, client, portal, sleeps=sleeps, log=log)
        stack.callback(session.close)
        yield session


# ------------------------------------------------------------------------ the calls themselves


def _run_sync(client: Client, kwargs: dict[str, Any]) -> Outcome:
    started = time.monotonic()
    try:
        result = client.chat.completions.create(**kwargs)
        if kwargs.get("stream"):
            with result:
                chunks = list(result)
            value: ChatCompletion | Streamed = Streamed(chunks, result.guard, result.completed)
        else:
            value = result
    except GuardedLLMError as error:
        return Outcome(None, error, time.monotonic() - started)
    return Outcome(value, None, time.monotonic() - started)


async def _run_async(client: AsyncClient, kwargs: dict[str, Any]) -> Outcome:
    started = time.monotonic()
    try:
        result = await client.chat.completions.create(**kwargs)
        if kwargs.get("stream"):
            async with result:
                chunks = [chunk async for chunk in result]
            value: ChatCompletion | Streamed = Streamed(chunks, result.guard, result.completed)
        else:
            value = result
    except GuardedLLMError as error:
        return Outcome(None, error, time.monotonic() - started)
    return Outcome(value, None, time.monotonic() - started)


async def _gather_async(
    client: AsyncClient, count: int, concurrency: int, kwargs: dict[str, Any]
) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * count
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int) -> None:
        async with limiter:
            outcomes[index] = await _run_async(client, kwargs)

    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(one, index)
    return [o for o in outcomes if o is not None]
