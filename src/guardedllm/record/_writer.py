"""The writer: a daemon thread that takes records off a bounded queue and appends them, one JSON
line each, to size-rotated files. A record comes as its template (``_build``) and the call's
values: the writer writes the lines of all it took in one go, which costs about half what
writing each line in the midst of its call did (the interpreter's caches then hold the call's
own work, not the template's).

Rules it keeps, so that recording never touches a call:

- The caller's side is ``put``: a ``put_nowait``, which never waits. A full queue drops the
  record and counts it (``queue_full``); so does a writer closed already (``closed``).
- Every file operation happens on the writer's thread, which writes what came in every
  ``RECORD_FLUSH_S`` (one write and one flush), not at each record. The directory is made and
  the first file opened with the first record (nothing at all for a client that records
  nothing); a file past ``max_bytes`` is closed and the next begun before a line would take it
  over (a line larger than a whole file goes alone in a new one).
- A write that fails (disk full, no permission, a path that is a file) drops the lines it was
  writing, counted (``write_error``) and logged once per writer, never raised; the next batch
  tries a new file. A record its template cannot write (a bug) is dropped alone, the same way.
- ``close`` writes what is queued and closes the file, waiting at most its ``timeout``: a hung
  disk cannot hang the application's shutdown: what it had not written by then is given up
  (never written later) and counted as ``closed``.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import IO, Any

from guardedllm import defaults
from guardedllm.record._build import call_line, shadow_line

__all__ = ["DropReason", "Writer", "file_name", "open_new"]

_log = logging.getLogger("guardedllm.record")

DropReason = str  # "queue_full", "write_error" or "closed"

# A queued item: a record's template (one of ``_TEMPLATES`` by its number), and the values
# (positional, then by name) it writes the record's JSON line from, newline included.
Template = Callable[..., str]
Item = tuple[int | Template, tuple[Any, ...], dict[str, Any]]

# The templates of record._build, queued by number rather than as the functions they are: an
# item then holds nothing the garbage collector keeps tracking once it has seen it (the engine
# hands over names, numbers and tuples of them), so records waiting for the writer are never
# moved to older generations, nor make full collections come sooner.
_TEMPLATES: tuple[Template, ...] = (call_line, shadow_line)
_NUMBERS: dict[Template, int] = {template: n for n, template in enumerate(_TEMPLATES)}

# Numbers the files of this process, whichever writer opens them: two clients writing to one
# directory in the same second never pick the same name.
_FILE_NUMBERS = itertools.count(1)


def file_name(now: float, pid: int, number: int) -> str:
    """``guardedllm-YYYYMMDDTHHMMSSZ-<pid>-<n>.jsonl`` for a file begun at ``now`` (UTC)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"guardedllm-{stamp}-{pid}-{number}.jsonl"


def open_new(directory: str) -> tuple[str, IO[bytes]]:
    """A new record file in ``directory`` (made if missing), never one that exists already."""
    os.makedirs(directory, exist_ok=True)
    while True:
        path = os.path.join(directory, file_name(time.time(), os.getpid(), next(_FILE_NUMBERS)))
        try:
            return path, open(path, "xb")
        except FileExistsError:
            continue


# The writers of this process, so that a forked child (a preforking server that made its
# clients before forking) starts writers of its own, to files named after its own pid, instead
# of queueing records for a thread it does not have.
_WRITERS: weakref.WeakSet[Writer] = weakref.WeakSet()
_FORK_HOOK: list[bool] = []


def _forget_after_fork(writer: Writer) -> None:
    _WRITERS.add(writer)
    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        _FORK_HOOK.append(True)
        os.register_at_fork(after_in_child=_begin_in_child)


def _begin_in_child() -> None:
    for writer in list(_WRITERS):
        writer._begin()


class Writer:
    """Records to ``directory``, rotated past ``max_bytes``, through a queue of ``queue_size``.

    ``on_drop(reason, n)`` hears of every record dropped (from any thread: it must be quick and
    thread-safe). ``opener`` opens the next file (tests pass a slow or failing one)."""

    def __init__(
        self,
        directory: str,
        *,
        max_bytes: int,
        queue_size: int = defaults.RECORD_QUEUE_SIZE,
        on_drop: Callable[[DropReason, int], None] | None = None,
        opener: Callable[[str], tuple[str, IO[bytes]]] = open_new,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._queue_size = queue_size
        self._on_drop = on_drop
        self._opener = opener
        self._closed = False
        self._warned = False
        self.written = 0
        self.dropped: dict[DropReason, int] = {}
        self.paths: list[str] = []  # the files begun, in order
        self._begin()
        _forget_after_fork(self)

    def _begin(self) -> None:
        """A writer of its own, not started: at creation, and in a child process after a fork
        (which has the parent's queue, locks and file, but not its thread)."""
        # A SimpleQueue (C, lock-free for the caller) bounded by a size check before each put:
        # a queue.Queue's put_nowait and get_nowait take a lock and a condition each, over a
        # microsecond apiece per record. Callers racing past the check at once can take it
        # over its bound by at most one record each.
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rounds = 0  # the writer's wakes so far, each ended with what it took written
        # The parent's file is left to the parent: its buffer is empty (every write is flushed),
        # so dropping the child's copy of it writes nothing twice.
        self._file: IO[bytes] | None = None
        self._size = 0
        self._in_hand = 0  # records the writer took off the queue and has not written yet
        self._abandoned = False  # set by a close that stopped waiting: write nothing more

    # ---------------------------------------------------------------- the caller's side

    def put(self, template: Template, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Queue a record, ``template(*args, **kwargs)``, for writing, or drop it (counted);
        never waits, never raises."""
        if self._closed:
            self._drop("closed", 1)
            return
        if self._thread is None and not self._start():
            self._drop("closed" if self._closed else "write_error", 1)
            return
        if self._queue.qsize() >= self._queue_size:
            self._drop("queue_full", 1)
            return
        self._queue.put_nowait((_NUMBERS.get(template, template), args, kwargs))

    def close(self, timeout: float = defaults.RECORD_CLOSE_WAIT_S) -> None:
        """Write what is queued and close the file, waiting at most ``timeout`` seconds."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if not thread.is_alive():
            late = self._queue.qsize()  # put by a call that raced the close past the last drain
            if late:
                self._drop("closed", late)
            return
        # Whatever the writer holds or has queued is given up: it writes nothing more if it
        # comes back (so what is counted lost here is never written after all).
        self._abandoned = True
        lost = self._in_hand + self._queue.qsize()
        _log.warning(
            "guardedllm record: the writer did not finish within %g s of closing (is %s on "
            "a disk that hangs?); the %d records it had not written are dropped",
            timeout,
            self.directory,
            lost,
        )
        if lost > 0:
            self._drop("closed", lost)

    def flush(self, timeout: float = defaults.RECORD_CLOSE_WAIT_S) -> bool:
        """Have the writer write what is queued now, and wait (at most ``timeout`` seconds)
        until it has; whether it did."""
        deadline = time.monotonic() + timeout
        while self._thread is not None and self._thread.is_alive():
            start = self._rounds
            self._wake.set()
            while self._rounds == start:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.001)
            if self._queue.empty():
                return True
        return self._queue.empty()

    def _start(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="guardedllm-record", daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:  # no thread to be had (a process at its limit)
                    self._failed(exc, 0)
                    return False
                self._thread = thread
        return True

    def _drop(self, reason: DropReason, count: int) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        if self._on_drop is not None:
            try:
                self._on_drop(reason, count)
            except Exception:  # a metrics hook must not break recording, nor a call
                _log.debug("guardedllm record: the drop counter raised", exc_info=True)

    # ---------------------------------------------------------------- the writer's thread

    def _run(self) -> None:
        # The writer wakes every RECORD_FLUSH_S, not at each record: a caller's put_nowait then
        # finds no thread waiting to be woken (a wake-up per record, and a write and a flush
        # per record, cost more CPU than the call they record), and each wake writes what
        # came in since the last one with one write and one flush.
        try:
            while not self._abandoned:
                self._wake.wait(defaults.RECORD_FLUSH_S)
                self._wake.clear()
                stopping = self._stop.is_set()
                items: list[Item] = []
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._in_hand = len(items)
                self._write(items)
                self._in_hand = 0
                self._rounds += 1
                if stopping:
                    return
        finally:
            self._close_file()

    def _write(self, items: list[Item]) -> None:
        lines: list[str] = []
        for template, args, kwargs in items:
            try:
                write = _TEMPLATES[template] if isinstance(template, int) else template
                lines.append(write(*args, **kwargs))
            except Exception as exc:  # a value its template cannot write (a bug): that record only
                self._failed(exc, 1)
        # "surrogatepass": a lone surrogate in a caller's text (JSON's escaper leaves it as
        # it is) is written as its bytes rather than failing the line.
        whole = "".join(lines).encode("utf-8", "surrogatepass")
        pieces: list[tuple[bytes, int]]  # bytes to write, and how many records they hold
        if self._file is not None and self._size + len(whole) <= self.max_bytes:
            pieces = [(whole, len(lines))]  # the common case: it all fits the file begun
        else:
            pieces = [(line.encode("utf-8", "surrogatepass"), 1) for line in lines]
        pending: list[bytes] = []
        held = 0  # the records in pending
        size = self._size  # the file's, with what is pending
        done = 0
        try:
            for piece, records in pieces:
                if self._abandoned:
                    return
                if self._file is None or (size and size + len(piece) > self.max_bytes):
                    done += self._flush(pending, held)
                    pending, held = [], 0
                    self._rotate()
                    size = 0
                pending.append(piece)
                held += records
                size += len(piece)
            done += self._flush(pending, held)
        except OSError as exc:
            self._failed(exc, len(lines) - done)
            self._close_file()

    def _flush(self, pending: list[bytes], records: int) -> int:
        """Write ``pending`` (``records`` lines) to the file; how many records it wrote (none
        once the writer is given up)."""
        if not pending or self._abandoned:
            return 0
        assert self._file is not None
        data = b"".join(pending)
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        self.written += records
        return records

    def _rotate(self) -> None:
        self._close_file()
        path, self._file = self._opener(self.directory)
        self._size = 0
        self.paths.append(path)

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                self._failed(exc, 0)

    def _failed(self, error: BaseException, lost: int) -> None:
        if lost:
            self._drop("write_error", lost)
        if not self._warned:
            self._warned = True
            _log.warning(
                "guardedllm record: could not write records to %s (%s: %s); records that "
                "cannot be written are dropped and counted in guardedllm.record.dropped, and "
                "calls go on. Check the directory's space and permissions. (Said once.)",
                self.directory,
                type(error).__name__,
                error,
            )
