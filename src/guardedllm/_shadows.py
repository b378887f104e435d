"""Running shadow copies in the background: on a small thread pool for ``Client``, as tasks for
``AsyncClient``. The engine decides which calls are copied and records what each copy did
(``engine/_routing.py``); these only run a copy's flow on the side and let go of it when the
client closes. A copy never raises into the caller's code: a bug surfacing in one is logged.

When the client closes, copies not started yet are dropped and copies running are abandoned at
their next step (their flow is closed, as a cancelled call's is): the breaker permits they hold
are released as "not the deployment's fault", so closing a client never counts against the
candidate. Each copy's place among its route's copies in flight is given back either way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import anyio
import sniffio

from guardedllm import defaults
from guardedllm.engine._routing import ShadowJob, shadow_flow

if TYPE_CHECKING:
    from guardedllm.engine._engine import Engine
    from guardedllm.engine._steps import Outcome, Step

__all__ = ["TaskShadows", "ThreadShadows"]

logger = logging.getLogger("guardedllm")

Flow = Generator["Step", "Outcome | None", None]


class _Shadows:
    """What both runners share: the engine hook, the closed flag, and the flow wrapper that
    abandons a copy once the client closes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._closed = False
        engine.spawn_shadow = self.spawn

    def spawn(self, job: ShadowJob) -> None:
        raise NotImplementedError

    def _flow(self, job: ShadowJob) -> Flow:
        """The copy's flow, closed (abandoned) at the first step after the client closes."""
        flow = shadow_flow(self._engine, job)
        try:
            step = next(flow)
            while not self.closed():
                outcome = yield step
                if self.closed():  # the outcome may be the client's closing: not the copy's
                    break
                step = flow.send(outcome)
        except StopIteration:
            return
        finally:
            flow.close()

    def closed(self) -> bool:
        return self._closed

    def _not_started(self, job: ShadowJob) -> None:
        self._engine.shadows.release(job.plan, None)

    def _log(self, error: BaseException) -> None:
        if self._closed:  # the client closed under the copy: expected, not worth an alarm
            logger.debug("a shadow copy ended as the client closed", exc_info=error)
        else:
            logger.error("a shadow copy failed unexpectedly", exc_info=error)


class ThreadShadows(_Shadows):
    """Shadow copies for the sync client, on up to ``defaults.SHADOW_THREADS`` threads
    started on the first copy."""

    def __init__(self, engine: Engine, drive: Callable[[Flow], None]) -> None:
        super().__init__(engine)
        self._drive = drive
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def spawn(self, job: ShadowJob) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=defaults.SHADOW_THREADS, thread_name_prefix="guardedllm-shadow"
                )
            future = self._pool.submit(self._run, job)
        future.add_done_callback(functools.partial(self._done, job))

    def _run(self, job: ShadowJob) -> None:
        if self._closed:
            self._not_started(job)
            return
        self._drive(self._flow(job))

    def _done(self, job: ShadowJob, future: Future[Any]) -> None:
        if future.cancelled():  # dropped from the queue when the client closed
            self._not_started(job)
            return
        error = future.exception()
        if error is not None:
            self._log(error)

    def close(self) -> None:
        """Take no more copies; drop those queued, abandon those running."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class TaskShadows(_Shadows):
    """Shadow copies for the async client: each a task of its own (asyncio) or a system task
    (trio), inside a cancel scope that ``cancel`` uses when the client closes."""

    def __init__(self, engine: Engine, drive: Callable[[Flow], Awaitable[None]]) -> None:
        super().__init__(engine)
        self._drive = drive
        self._scopes: set[anyio.CancelScope] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, job: ShadowJob) -> None:
        if self._closed:
            raise RuntimeError("the client is closed")
        started: list[bool] = []
        if sniffio.current_async_library() == "trio":
            import trio

            trio.lowlevel.spawn_system_task(self._run, job, started)
        else:
            task = asyncio.get_running_loop().create_task(self._run(job, started))
            self._tasks.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(functools.partial(self._done, job, started))

    async def _run(self, job: ShadowJob, started: list[bool]) -> None:
        started.append(True)
        if self._closed:
            self._not_started(job)
            return
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await self._drive(self._flow(job))
            except Exception as exc:
                self._log(exc)
            finally:
                self._scopes.discard(scope)

    def _done(self, job: ShadowJob, started: list[bool], task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not started:  # cancelled before its first step
            self._not_started(job)

    def cancel(self) -> None:
        """Take no more copies; cancel those running (each is abandoned) or not yet started."""
        self._closed = True
        for scope in list(self._scopes):
            scope.cancel()
        for task in list(self._tasks):
            task.cancel()
