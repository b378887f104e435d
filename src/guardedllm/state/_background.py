"""Guard operations run off a call's path: where an async client's flow cannot yield a state
step (it is being closed by a cancellation), what it still holds on a shared store is let go of
here, on a worker thread, never on the event loop.

One small pool per client, started on first use, so a client whose backend answers in process
starts no thread. A thread works alike under asyncio, trio and plain threads. Nothing here
raises into the caller: a failure (the store down, say) is logged, and what it would have let
go of expires with its key (see ``_lua.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from guardedllm import defaults

__all__ = ["Background", "StepInFlight", "run_logged"]

logger = logging.getLogger("guardedllm")


def run_logged(run: Callable[[], object]) -> None:
    """``run()``, logging what it raises instead of raising it: nobody waits on its result."""
    try:
        run()
    except Exception:
        logger.warning(
            "guard state: letting go of what an abandoned call held failed", exc_info=True
        )


class Background:
    """A client's background runner for guard operations (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def submit(self, run: Callable[[], object]) -> None:
        """Run ``run`` on a worker thread soon; at once, here, once the client has closed
        (nothing may be left held because it closed)."""
        with self._lock:
            if not self._closed:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=defaults.STATE_BACKGROUND_THREADS,
                        thread_name_prefix="guardedllm-state",
                    )
                self._pool.submit(run_logged, run)
                return
        run_logged(run)

    def close(self) -> None:
        """Wait for what was submitted (blocking: from an event loop, call it in a thread)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


class StepInFlight:
    """A state step run in a worker thread while its driver waits for it up to a bound (the
    call's deadline). When the driver stops waiting first, the step keeps running; ``then``
    queues what must run after it (letting go of what it took), so that nothing touches the
    call's guard state while the step still does."""

    def __init__(
        self, run: Callable[[], object], *, later: Callable[[Callable[[], object]], None]
    ) -> None:
        """``later`` runs what ``then`` is given once the step has already finished."""
        self._run = run
        self._later = later
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._then: list[Callable[[], object]] = []
        self.value: object = None
        self.error: Exception | None = None

    def __call__(self) -> None:
        """Run the step (in the worker thread), then what was queued meanwhile."""
        try:
            self.value = self._run()
        except Exception as error:  # the flow decides what it means, if it still waits
            self.error = error
        with self._lock:
            self._done.set()
            queued, self._then = self._then, []
        for run in queued:
            run_logged(run)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Whether the step finished within ``timeout_s`` (blocking)."""
        return self._done.wait(timeout_s)

    def then(self, run: Callable[[], object]) -> None:
        """``run()`` once the step has finished: in its thread, right after it, or by
        ``later`` when it has finished already."""
        with self._lock:
            if not self._done.is_set():
                self._then.append(run)
                return
        self._later(run)
