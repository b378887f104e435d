"""A loopback HTTP server that misbehaves on purpose, for what FakeProvider does not script:
status lines trickled a byte at a time, redirects to another origin, compressed bombs, and
(with ``streamed``) answers such as a vendor error event in the middle of a stream, an event
that never ends, a stream that does not stop.

Each connection's request is read whole (head and Content-Length body) and recorded; then the
test's ``reply`` writes whatever it likes to the socket. Every reply must bound itself in time
and bytes and stop when ``stop`` is set (on exit); the server waits for them all on exit.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType

import attrs

# How long a connection may take to send its request before the server gives up on it.
_REQUEST_TIMEOUT_S = 5.0
# How often the accept loop looks at ``stop``.
_POLL_S = 0.05
# Socket timeout for a reply's writes: a client that stops reading for this long is gone.
_WRITE_TIMEOUT_S = 10.0

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
    headers: dict[str, str]
    body: bytes


Reply = Callable[[Received, socket.socket, threading.Event], None]


class RawServer:
    """``with RawServer(reply) as server:`` serves ``server.url`` until the block ends."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Received] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="raw-server", daemon=True)

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._acceptor.join()
        self._listener.close()
        for thread in self._threads:
            thread.join()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(_REQUEST_TIMEOUT_S)
            try:
                received = _read_request(conn)
                if received is None:
                    return
                self.requests.append(received)
                self._reply(received, conn, self._stop)
            except OSError:  # the client gave up on us: what a misbehaving server expects
                pass


def _read_request(conn: socket.socket) -> Received | None:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            return None
        body += more
    return Received(method=method, path=path, headers=headers, body=body)


def streamed(
    pieces: Callable[[], Iterable[bytes]], *, content_type: str = "text/event-stream"
) -> Reply:
    """A reply of ``200`` with ``content_type`` and a body closed by closing the connection,
    written piece by piece from ``pieces()`` (a fresh, bounded iterable per request). A client
    that hangs up ends the answer."""

    def reply(received: Received, conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(_WRITE_TIMEOUT_S)
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
