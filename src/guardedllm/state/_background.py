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

__all__ = ["Background", "run_logged"]

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
