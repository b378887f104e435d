"""Running shadow copies in the background: on a daemon thread each for ``Client``, as tasks
for ``AsyncClient``. The engine decides which calls are copied and records what each copy did
(``engine/_routing.py``); these only run a copy's flow on the side and let go of it when the
client closes. A copy never raises into the caller's code: a bug surfacing in one is logged.

When the client closes, copies not started yet are dropped and copies running are abandoned at
their next step (their flow is closed, as a cancelled call's is): the breaker permits they hold
are released as "not the deployment's fault", so closing a client never counts against the
candidate. Each copy's place among its route's copies in flight is given back either way, and
the client's connection pool is closed after the copies have let go of their connections.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING

import anyio
import sniffio

from guardedllm import defaults

if TYPE_CHECKING:  # the engine loads with the first client, not with ``import guardedllm``
    from guardedllm.engine._engine import Engine
    from guardedllm.engine._routing import ShadowJob
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

    def _flow(self, job: ShadowJob) -> Flow:
        """The copy's flow, closed (abandoned) at the first step after the client closes."""
        from guardedllm.engine._recording import record_shadow
        from guardedllm.engine._routing import shadow_flow

        engine = self._engine
        flow = shadow_flow(
            job,
            run=engine.run,
            clock=engine.clock,
            shadows=engine.shadows,
            record=functools.partial(record_shadow, engine) if engine.recorder else None,
        )
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
    """Shadow copies for the sync client, each on a daemon thread of its own (the route's
    ``max_in_flight`` bounds how many run; a daemon thread never holds up the interpreter's
    exit, as a hung copy on a pool thread would)."""

    def __init__(self, engine: Engine, drive: Callable[[Flow], None]) -> None:
        super().__init__(engine)
        self._drive = drive
        self._lock = threading.Lock()
        self._running = 0
        self._on_idle: Callable[[], None] | None = None
        engine.spawn_shadow = self.spawn

    def spawn(self, job: ShadowJob) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            self._running += 1
        thread = threading.Thread(
            target=self._run, args=(job,), name="guardedllm-shadow", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            self._finished()
            raise

    def _run(self, job: ShadowJob) -> None:
        try:
            self._drive(self._flow(job))
        except Exception as exc:
            self._log(exc)
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._lock:
            self._running -= 1
            then = self._on_idle if self._running == 0 else None
            if then is not None:
                self._on_idle = None
        if then is not None:
            then()

    def close(self, then: Callable[[], None] | None = None) -> None:
        """Take no more copies and abandon those running at their next step; ``then`` runs
        once none is left (now, if none is running): the client closes its pool there, so
        that no copy's connection is closed under it."""
        with self._lock:
            self._closed = True
            if self._running:
                self._on_idle = then
                then = None
        if then is not None:
            then()


class TaskShadows(_Shadows):
    """Shadow copies for the async client: each a task of its own (asyncio) or a system task
    (trio), inside a cancel scope that ``cancel`` uses when the client closes."""

    def __init__(self, engine: Engine, drive: Callable[[Flow], Awaitable[None]]) -> None:
        super().__init__(engine)
        self._drive = drive
        self._scopes: set[anyio.CancelScope] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._idle: anyio.Event | None = None
        engine.spawn_shadow = self.spawn

    def spawn(self, job: ShadowJob) -> None:
        if self._closed:
            raise RuntimeError("the client is closed")
        started: list[bool] = []
        self._running += 1
        if sniffio.current_async_library() == "trio":
            import trio

            trio.lowlevel.spawn_system_task(self._run, job, started)
        else:
            task = asyncio.get_running_loop().create_task(self._run(job, started))
            self._tasks.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(functools.partial(self._done, job, started))

    async def _run(self, job: ShadowJob, started: list[bool]) -> None:
        started.append(True)
        try:
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
        finally:
            self._finished()

    def _done(self, job: ShadowJob, started: list[bool], task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not started:  # cancelled before its first step
            self._not_started(job)
            self._finished()

    def _finished(self) -> None:
        self._running -= 1
        if self._running == 0 and self._idle is not None:
            self._idle.set()

    async def cancel(self) -> None:
        """Take no more copies; cancel those running (each is abandoned) or not yet started,
        and wait (briefly) until they have let go, so that the client closes its pool after
        them."""
        self._closed = True
        for scope in list(self._scopes):
            scope.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._running:
            self._idle = anyio.Event()
            with anyio.move_on_after(defaults.SHADOW_CLOSE_WAIT_S):
                await self._idle.wait()
