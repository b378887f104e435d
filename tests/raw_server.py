"""A loopback HTTP server that misbehaves on purpose, for what FakeProvider does not script:
status lines trickled a byte at a time, redirects to another origin, compressed bombs, and
(with ``streamed``) answers such as a vendor error event in the middle of a stream, an event
that never ends, a stream that does not stop. The fuzz suite's ``HostileServer`` plays scripted
answers through it.

Each connection's request is read whole (head and Content-Length body) and recorded; then the
test's ``reply`` writes whatever it likes to the socket. Rules that keep a test bounded
whatever its reply does:

- every connection serves one request and is shut after its reply;
- a reply bounds itself in time and bytes and stops when ``stop`` is set (on close);
- every socket read or write that makes no progress for ``IO_TIMEOUT_S`` ends the connection;
- ``close()`` shuts every open connection and joins every handler thread, so a test leaves no
  thread or socket behind.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

import attrs

HOST = "127.0.0.1"
# Socket reads and writes that make no progress for this long end the connection: a client
# that stopped reading must not hold a handler thread for ever.
IO_TIMEOUT_S = 5.0
# How long ``close`` waits for a reply to notice ``stop``, beyond the socket timeout.
_REPLY_GRACE_S = 5.0
# How often the accept loop looks at ``stop``.
_POLL_S = 0.05
# A request head longer than this is not from a guardedllm client.
MAX_HEAD_BYTES = 256 * 1024

# A mebibyte of SSE comment lines, which every SSE reader skips. No read of a client's takes in
# what comes before them and what comes after at once (httpx reads 64 KiB at a time; aiohttp's
# buffer stops filling at a few hundred), so a stream that must break after its first chunk
# has reached the caller sends that chunk, this, then the break: no pause to time, and no
# chance that a busy machine hands the client both in one read.
APART = (b":" + b" " * 1021 + b"\n\n") * 1024


@attrs.frozen
class Received:
    """A request as the server read it; header names are lower-cased."""

    method: str
    path: str  # with the query string, as sent
    headers: Mapping[str, str]
    body: bytes


Reply = Callable[[Received, socket.socket, threading.Event], None]


class RawServer:
    """``with RawServer(reply) as server:`` serves ``server.url`` until the block ends.
    ``requests`` lists the requests read so far (always empty with ``journal=False``, for a
    test that measures memory in this process)."""

    def __init__(self, reply: Reply, *, journal: bool = True) -> None:
        self._reply = reply
        self._journal = journal
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._listener = socket.create_server((HOST, 0), backlog=128)
        self._listener.settimeout(_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self._acceptor = threading.Thread(target=self._accept, name="raw-server", daemon=True)
        self._acceptor.start()

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def close(self) -> None:
        """Stop: tell every reply to end, shut every connection, join every thread."""
        self._stop.set()
        with contextlib.suppress(OSError):  # wakes the accept loop at once (Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(IO_TIMEOUT_S)
        self._listener.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            _shut(connection)
        for thread in threads:
            thread.join(IO_TIMEOUT_S + _REPLY_GRACE_S)
            assert not thread.is_alive(), "a raw-server handler did not stop"

    def __enter__(self) -> RawServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve, args=(connection,), name="raw-server-conn", daemon=True
            )
            with self._lock:
                self._connections.add(connection)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(IO_TIMEOUT_S)
            received = _read_request(connection)
            if received is None:
                return
            if self._journal:
                with self._lock:
                    self._requests.append(received)
            self._reply(received, connection, self._stop)
        except OSError:
            pass  # the client gave up on us, or close() shut the connection: nothing to answer
        finally:
            with self._lock:
                self._connections.discard(connection)
            _shut(connection)


def _read_request(connection: socket.socket) -> Received | None:
    """One request's head and its Content-Length body; None for a client that left, or sent
    what no guardedllm client sends."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        data = connection.recv(65536)
        if not data or len(buffer) > MAX_HEAD_BYTES:
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0") or 0)
    except ValueError:
        return None
    body = bytearray(rest)
    while len(body) < length:
        data = connection.recv(65536)
        if not data:
            return None
        body += data
    return Received(method=method, path=path, headers=headers, body=bytes(body))


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


def streamed(
    pieces: Callable[[], Iterable[bytes]], *, content_type: str = "text/event-stream"
) -> Reply:
    """A reply of ``200`` with ``content_type`` and a body closed by closing the connection,
    written piece by piece from ``pieces()`` (a fresh, bounded iterable per request). A client
    that hangs up ends the answer."""

    def reply(received: Received, conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\n"
            + f"Content-Type: {content_type}\r\n".encode()
            + b"Connection: close\r\n\r\n"
        )
        for piece in pieces():
            if stop.is_set():
                return
            conn.sendall(piece)

    return reply
