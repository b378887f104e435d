"""A real HTTP/1.1 server (aiohttp) on its own event loop in a background thread.

The loop is private to the server, so clients in the test's thread may be sync, asyncio or
trio: they only ever see a socket. ``start`` returns once the socket is bound (port 0: the OS
picks a free port) or raises what went wrong; ``stop`` sets the loop's ``stopping`` event
(which every pending hang or delay in the handler races), lets aiohttp close every connection,
and joins the thread, so a stopped server leaves no socket, task or thread behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["BackgroundServer"]

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

# Requests as large as a long-context prompt (aiohttp's default limit is 1 MiB).
MAX_REQUEST_BYTES = 64 * 1024 * 1024
# Pending connections the kernel queues: well above the 64+ concurrent clients benchmarks open.
LISTEN_BACKLOG = 1024
# How long stop() lets in-flight handlers finish before aiohttp cancels them. Handlers wake at
# once on ``stopping``, so this only bounds a handler stuck in a slow client write.
SHUTDOWN_GRACE_S = 1.0
# Upper bound for starting or stopping the thread: both take milliseconds on a healthy machine.
THREAD_TIMEOUT_S = 10.0


class BackgroundServer:
    """Serves ``make_handler(stopping)`` on ``host``, port chosen by the OS."""

    def __init__(
        self, make_handler: Callable[[asyncio.Event], Handler], *, host: str, port: int = 0
    ) -> None:
        self._make_handler = make_handler
        self._host = host
        self._wanted_port = port  # 0: a free one the system picks
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port: int | None = None

    def start(self) -> int:
        self._thread = threading.Thread(
            target=self._run, name=f"guardedllm-fake-{self._host}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(THREAD_TIMEOUT_S):
            raise RuntimeError(
                f"the FakeProvider server did not start within {THREAD_TIMEOUT_S:g} s; the "
                "machine may be overloaded. Retry, or check for a stuck event loop."
            )
        if self._error is not None or self.port is None:
            self._thread.join(THREAD_TIMEOUT_S)
            raise RuntimeError(
                f"the FakeProvider server could not start on {self._host} port "
                f"{self._wanted_port or '(any)'}: {self._error!r}. Pass a host this machine "
                "has (default 127.0.0.1), and a port no other server holds (or 0 for any)."
            ) from self._error
        return self.port

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            # The loop may close between the check and the call: then it is stopped anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        thread.join(THREAD_TIMEOUT_S)
        if thread.is_alive():
            raise RuntimeError(
                f"the FakeProvider server thread did not stop within {THREAD_TIMEOUT_S:g} s; "
                "a handler may be blocked. Report this as a guardedllm bug."
            )
        self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._make_handler(self._stopping))
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._wanted_port, backlog=LISTEN_BACKLOG)
            await site.start()
            self.port = int(runner.addresses[0][1])
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
