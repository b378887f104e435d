"""A loopback HTTP server that misbehaves on purpose: every byte it sends is scripted.

``FakeProvider`` speaks the vendors' formats correctly and scripts faults on top of them; the
fuzz suite needs what no vendor sends: a status line trickled byte by byte, a body that never
ends, a gzip bomb, a key echoed back in a 200, a redirect to another origin. ``HostileServer``
reads each request (head and ``Content-Length`` body) and then plays the current ``Answer``
verbatim: its parts in order (with a pause between them), then a chunk repeated until a byte
count, then close, hang or reset. It never parses what it sends, so any framing can be tried.

Rules that keep a test bounded whatever it scripts:

- every connection serves one request and is closed after its answer (``Connection: close``
  is in every head the builders make, so clients do not wait on a connection it dropped);
- a pause, a hang or a blocked write ends when the server stops, a hang also when the client
  closes the connection, and after ``HANG_MAX_S`` at the latest; a repeat stops at its byte
  count;
- ``close()`` shuts every open connection down and joins every handler thread, so a test
  leaves no thread or socket behind.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Literal

import attrs

__all__ = [
    "Answer",
    "HostileServer",
    "Received",
    "gzip_bomb",
    "respond",
    "split_bytes",
]

HOST = "127.0.0.1"
# The longest a hang lasts, should the client never give up: far above any per-call timeout
# the fuzz tests use, short enough that a broken client fails the test instead of hanging it.
HANG_MAX_S = 5.0
# Socket reads and writes that make no progress for this long end the connection: a client
# that stopped reading a stream must not hold a handler thread for ever.
IO_TIMEOUT_S = 5.0
# How often a hanging connection checks whether the client has gone.
_POLL_S = 0.05
# A request head longer than this is not from a guardedllm client.
MAX_HEAD_BYTES = 256 * 1024

Ending = Literal["close", "hang", "reset"]


@attrs.frozen(kw_only=True)
class Answer:
    """The bytes one request gets.

    ``parts`` go out in order, with ``gap_s`` before each part after the first; then
    ``repeat`` goes out again and again until ``repeat_bytes`` bytes of it have been sent; then
    the connection is closed (``"close"``), held open without a byte more (``"hang"``), or
    reset (``"reset"``, an RST instead of a FIN). ``label`` names the answer in reports.
    """

    parts: tuple[bytes, ...]
    gap_s: float = 0.0
    repeat: bytes = b""
    repeat_bytes: int = 0
    then: Ending = "close"
    label: str = ""

    def __repr__(self) -> str:  # short: an assertion message quotes it
        size = sum(map(len, self.parts)) + self.repeat_bytes
        head = self.parts[0][:120] if self.parts else b""
        return f"Answer({self.label or head!r}, {size} bytes, then={self.then})"


@attrs.frozen(kw_only=True)
class Received:
    """One request as the server read it."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes


def respond(
    status: int = 200,
    body: bytes = b"",
    *,
    headers: Sequence[tuple[str, str]] = (("content-type", "application/json"),),
    framing: Literal["length", "chunked", "close"] = "length",
    reason: str = "Hostile",
    label: str = "",
) -> Answer:
    """A complete answer: status line, ``headers``, then ``body`` framed by a
    ``Content-Length`` (``"length"``), as one chunk of chunked encoding (``"chunked"``), or by
    closing the connection (``"close"``)."""
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers)]
    lines.append("connection: close")
    if framing == "length":
        lines.append(f"content-length: {len(body)}")
        payload = body
    elif framing == "chunked":
        lines.append("transfer-encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        payload = body
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Answer(parts=(head, payload) if payload else (head,), label=label)


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip body that inflates to ``inflated_bytes`` zero bytes (about a thousandth of that
    on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(inflated_bytes // len(block))]
    parts.append(packer.compress(bytes(inflated_bytes % len(block))))
    parts.append(packer.flush())
    return b"".join(parts)


class HostileServer:
    """Serves ``answer`` (settable at any time, from any thread) to every request, on
    127.0.0.1 at a port the OS picks; ``received`` lists the requests read so far (always
    empty with ``journal=False``, for a test that measures memory in this process)."""

    def __init__(self, answer: Answer | None = None, *, journal: bool = True) -> None:
        self._lock = threading.Lock()
        self._journal = journal
        self._answer = answer or respond(200, b"{}")
        self._received: list[Received] = []
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((HOST, 0), backlog=128)
        self._listener.settimeout(0.2)  # the accept loop notices ``close`` this often
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self._acceptor = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)
        self._acceptor.start()

    # ---------------------------------------------------------------- the test's side

    @property
    def answer(self) -> Answer:
        with self._lock:
            return self._answer

    @answer.setter
    def answer(self, value: Answer) -> None:
        with self._lock:
            self._answer = value

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def close(self) -> None:
        """Stop: end every pause and hang, shut every connection, join every thread."""
        self._stopping.set()
        with contextlib.suppress(OSError):  # wakes the accept loop at once (Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(IO_TIMEOUT_S)
        self._listener.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            _shut(connection)
        for thread in threads:
            thread.join(IO_TIMEOUT_S + HANG_MAX_S)
            assert not thread.is_alive(), "a hostile-server handler did not stop"

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- the server's side

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve, args=(connection,), name="hostile-conn", daemon=True
            )
            with self._lock:
                self._connections.add(connection)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(IO_TIMEOUT_S)
            request = _read_request(connection)
            if request is None:
                return
            with self._lock:
                if self._journal:
                    self._received.append(request)
                answer = self._answer
            self._play(connection, answer)
        except OSError:
            pass  # the client went away, or close() shut the connection: nothing to answer
        finally:
            with self._lock:
                self._connections.discard(connection)
            _shut(connection)

    def _play(self, connection: socket.socket, answer: Answer) -> None:
        for index, part in enumerate(answer.parts):
            if index and answer.gap_s and self._stopping.wait(answer.gap_s):
                return
            connection.sendall(part)
        sent = 0
        while answer.repeat and sent < answer.repeat_bytes and not self._stopping.is_set():
            connection.sendall(answer.repeat)
            sent += len(answer.repeat)
        if answer.then == "hang":
            self._hold(connection)
        elif answer.then == "reset":  # a zero linger makes close() send RST, not FIN
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            connection.close()

    def _hold(self, connection: socket.socket) -> None:
        """Keep ``connection`` open without sending a byte more, until the client closes it,
        the server stops, or ``HANG_MAX_S`` has passed."""
        connection.settimeout(_POLL_S)
        deadline = time.monotonic() + HANG_MAX_S
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                if not connection.recv(65536):
                    return  # the client went away
            except TimeoutError:
                continue


def _read_request(connection: socket.socket) -> Received | None:
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


def split_bytes(data: bytes, size: int = 1) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes: for answers trickled byte by byte."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
