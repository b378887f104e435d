"""A raw HTTP server on 127.0.0.1 that answers every request with scripted bytes, for answers
FakeProvider will not send: a vendor error event in the middle of a stream, an event that never
ends, a stream that does not stop.

Every request gets ``200`` with the content type given and a body closed by closing the
connection, written piece by piece from ``pieces()``, a fresh iterable per request. A client
that hangs up ends the answer. ``sent`` counts the body bytes written, over every request.
``APART`` between two pieces puts them in different reads of the client's, however it is
scheduled.
Every socket operation has a timeout and every answer is a bounded iterable, so a test that
goes wrong fails instead of hanging.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType

# Socket timeout for the server's reads and writes: a client that stops reading for this long
# is gone.
_IO_TIMEOUT_S = 10.0

# A mebibyte of SSE comment lines, which every SSE reader skips. No read of a client's takes in
# what comes before them and what comes after at once (httpx reads 64 KiB at a time; aiohttp's
# buffer stops filling at a few hundred), so a stream that must break after its first chunk
# has reached the caller sends that chunk, this, then the break: no pause to time, and no
# chance that a busy machine hands the client both in one read.
APART = (b":" + b" " * 1021 + b"\n\n") * 1024


class RawServer:
    def __init__(
        self,
        pieces: Callable[[], Iterable[bytes]],
        *,
        content_type: str = "text/event-stream",
    ) -> None:
        self._pieces = pieces
        self._content_type = content_type
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sent = 0
        self.requests = 0
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def base_url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def sent(self) -> int:
        with self._lock:
            return self._sent

    def __enter__(self) -> RawServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._answer, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(_IO_TIMEOUT_S)
            try:
                _read_request(connection)
                with self._lock:
                    self.requests += 1
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\n"
                    + f"Content-Type: {self._content_type}\r\n".encode()
                    + b"Connection: close\r\n\r\n"
                )
                for piece in self._pieces():
                    if self._stopping.is_set():
                        return
                    connection.sendall(piece)
                    with self._lock:
                        self._sent += len(piece)
            except OSError:  # the client hung up (or took too long): the answer ends
                return


def _read_request(connection: socket.socket) -> None:
    """Read one request's head and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = connection.recv(65536)
        if not more:
            raise ConnectionError("the client closed before its request ended")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        more = connection.recv(65536)
        if not more:
            raise ConnectionError("the client closed before its request body ended")
        body += more
