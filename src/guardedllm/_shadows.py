"""Running shadow copies in the background: on a small thread pool for ``Client``, as tasks for
``AsyncClient``. The engine decides which calls are copied and records what each copy did
(``engine/_routing.py``); these only start a copy's flow on the side and let go of it when the
client closes. A copy never raises into the caller's code: a bug surfacing in one is logged.
"""

from __future__ import annotations

import asyncio
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


class ThreadShadows:
    """Shadow copies for the sync client, on up to ``defaults.SHADOW_THREADS`` threads
    started on the first copy."""

    def __init__(self, engine: Engine, drive: Callable[[Flow], None]) -> None:
        self._engine = engine
        self._drive = drive
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        engine.spawn_shadow = self.spawn

    def spawn(self, job: ShadowJob) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed: no shadow copy is sent")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=defaults.SHADOW_THREADS, thread_name_prefix="guardedllm-shadow"
                )
            pool = self._pool
        future = pool.submit(self._drive, shadow_flow(self._engine, job))
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        """Stop taking copies; those queued are dropped (their places given back), those
        running end by their deadline on their own."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(future: Future[Any]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        logger.error("a shadow copy failed unexpectedly", exc_info=error)


class TaskShadows:
    """Shadow copies for the async client: each a task of its own (asyncio) or a system task
    (trio), inside a cancel scope that ``cancel`` uses when the client closes."""

    def __init__(self, engine: Engine, drive: Callable[[Flow], Awaitable[None]]) -> None:
        self._engine = engine
        self._drive = drive
        self._scopes: set[anyio.CancelScope] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        engine.spawn_shadow = self.spawn

    def spawn(self, job: ShadowJob) -> None:
        if self._closed:
            raise RuntimeError("the client is closed: no shadow copy is sent")
        flow = shadow_flow(self._engine, job)
        if sniffio.current_async_library() == "trio":
            import trio

            trio.lowlevel.spawn_system_task(self._run, flow)
        else:
            task = asyncio.get_running_loop().create_task(self._run(flow))
            self._tasks.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(self._tasks.discard)

    async def _run(self, flow: Flow) -> None:
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await self._drive(flow)
            except Exception:
                logger.exception("a shadow copy failed unexpectedly")
            finally:
                self._scopes.discard(scope)

    def cancel(self) -> None:
        """Stop every copy still running (each gives its place back) and take no more."""
        self._closed = True
        for scope in list(self._scopes):
            scope.cancel()
        for task in list(self._tasks):
            task.cancel()  # one not started yet has no scope to cancel
