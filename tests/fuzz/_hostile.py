"""A loopback HTTP server that misbehaves on purpose: every byte it sends is scripted.

``FakeProvider`` speaks the vendors' formats correctly and scripts faults on top of them; the
fuzz suite needs what no vendor sends: a status line trickled byte by byte, a body that never
ends, a gzip bomb, a key echoed back in a 200, a redirect to another origin. ``HostileServer``
reads each request (head and ``Content-Length`` body) and then plays the current ``Answer``
verbatim: its parts in order (with a pause between them), then a chunk repeated until a byte
count, then close, hang or reset. It never parses what it sends, so any framing can be tried.

Answers are played through ``raw_server.RawServer``, whose rules keep a test bounded whatever it
scripts; a pause or a hang also ends when the server stops, a hang also when the client closes
the connection, and after ``HANG_MAX_S`` at the latest; a repeat stops at its byte count.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Literal

import attrs

from raw_server import RawServer, Received

__all__ = [
    "Answer",
    "HostileServer",
    "Received",
    "gzip_bomb",
    "respond",
    "split_bytes",
]

# The longest a hang lasts, should the client never give up: far above any per-call timeout
# the fuzz tests use, short enough that a broken client fails the test instead of hanging it.
HANG_MAX_S = 5.0
# How often a hanging connection checks whether the client has gone.
_POLL_S = 0.05

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


class HostileServer(RawServer):
    """Serves ``answer`` (settable at any time, from any thread) to every request, on
    127.0.0.1 at a port the OS picks; ``received`` lists the requests read so far (always
    empty with ``journal=False``, for a test that measures memory in this process)."""

    def __init__(self, answer: Answer | None = None, *, journal: bool = True) -> None:
        self._answer = answer or respond(200, b"{}")
        super().__init__(self._play, journal=journal)

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
        return self.requests

    def __enter__(self) -> HostileServer:
        return self

    def _play(self, _: Received, connection: socket.socket, stop: threading.Event) -> None:
        answer = self.answer
        for index, part in enumerate(answer.parts):
            if index and answer.gap_s and stop.wait(answer.gap_s):
                return
            connection.sendall(part)
        sent = 0
        while answer.repeat and sent < answer.repeat_bytes and not stop.is_set():
            connection.sendall(answer.repeat)
            sent += len(answer.repeat)
        if answer.then == "hang":
            _hold(connection, stop)
        elif answer.then == "reset":  # a zero linger makes close() send RST, not FIN
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            connection.close()


def _hold(connection: socket.socket, stop: threading.Event) -> None:
    """Keep ``connection`` open without sending a byte more, until the client closes it, the
    server stops, or ``HANG_MAX_S`` has passed."""
    connection.settimeout(_POLL_S)
    deadline = time.monotonic() + HANG_MAX_S
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if not connection.recv(65536):
                return  # the client went away
        except TimeoutError:
            continue


def split_bytes(data: bytes, size: int = 1) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes: for answers trickled byte by byte."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
