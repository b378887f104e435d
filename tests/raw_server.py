"""A raw HTTP server on 127.0.0.1 that answers every request with scripted bytes, for answers
FakeProvider will not send: a vendor error event in the middle of a stream, an event that never
ends, a stream that does not stop.

Every request gets ``200`` with the content type given and a body closed by closing the
connection, written piece by piece from ``pieces()``, a fresh iterable per request, with
``pause_s`` between pieces so that each one reaches the client in a read of its own (a number
among the pieces is a pause of that many seconds, for a pause in one place only). A client
that hangs up ends the answer. ``sent`` counts the body bytes written, over every request.
Every socket operation has a timeout and every answer is a bounded iterable, so a test that
goes wrong fails instead of hanging.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType

# Socket timeout for the server's reads and writes: a client that stops reading for this long
# is gone.
_IO_TIMEOUT_S = 10.0


class RawServer:
    def __init__(
        self,
        pieces: Callable[[], Iterable[bytes | float]],
        *,
        pause_s: float = 0.0,
        content_type: str = "text/event-stream",
    ) -> None:
        self._pieces = pieces
        self._pause_s = pause_s
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
                for index, piece in enumerate(self._pieces()):
                    if self._stopping.is_set():
                        return
                    if isinstance(piece, float):
                        time.sleep(piece)
                        continue
                    if index and self._pause_s:
                        time.sleep(self._pause_s)
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
