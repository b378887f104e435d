"""What a server that misbehaves on purpose cannot do to a call, through every driver: hold it
past its deadline by trickling bytes, or take more memory than ``max_response_bytes`` with a
compressed bomb. The servers are raw loopback sockets (``raw_server.py``)."""

from __future__ import annotations

import functools
import socket
import threading
import time
import tracemalloc
import zlib
from typing import Any

import anyio
import attrs
import httpx
import pytest

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.errors import (
    AllRoutesFailedError,
    DeadlineExceededError,
    GuardedLLMError,
    ResponseFormatError,
)
from raw_server import RawServer, Received
from support import ENVIRON, config_at

MESSAGES = [{"role": "user", "content": "hi"}]


@attrs.frozen
class Ended:
    """How one call ended: the guardedllm error it raised (None if it returned), how long it
    took, and the most memory it held at once (what tracemalloc saw allocated during it)."""

    error: GuardedLLMError | None
    elapsed_s: float
    peak_bytes: int


def call_once(
    driver: str,
    registry: Registry,
    *,
    users_client: bool = False,
    client_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Ended:
    """One ``create(**kwargs)`` through a client of ``driver`` (over a plain httpx client of
    the caller's if ``users_client``), measured without the client's construction, warm-up
    (the tokenizer loads with the first estimate) and closing. A stream is read to its end."""
    client_kwargs = {"environ": ENVIRON, **(client_kwargs or {})}

    def measure() -> tuple[float, int]:
        return time.monotonic(), tracemalloc.get_traced_memory()[0]

    def ended(error: GuardedLLMError | None, started: tuple[float, int]) -> Ended:
        peak = tracemalloc.get_traced_memory()[1] - started[1]
        return Ended(error, time.monotonic() - started[0], peak)

    def sync_call() -> Ended:
        http = httpx.Client() if users_client else None
        with Client(registry, http_client=http, **client_kwargs) as client:
            client.estimate(model=kwargs["model"], messages=kwargs["messages"])
            tracemalloc.start()
            started = measure()
            try:
                result = client.chat.completions.create(**kwargs)
                if kwargs.get("stream"):
                    list(result)
            except GuardedLLMError as exc:
                return ended(exc, started)
            finally:
                tracemalloc.stop()
                if http is not None:
                    http.close()
            return ended(None, started)

    async def async_call() -> Ended:
        http = httpx.AsyncClient() if users_client else None
        async with AsyncClient(registry, http_client=http, **client_kwargs) as client:
            await client.estimate(model=kwargs["model"], messages=kwargs["messages"])
            tracemalloc.start()
            started = measure()
            try:
                result = await client.chat.completions.create(**kwargs)
                if kwargs.get("stream"):
                    [chunk async for chunk in result]
            except GuardedLLMError as exc:
                return ended(exc, started)
            finally:
                tracemalloc.stop()
                if http is not None:
                    await http.aclose()
            return ended(None, started)

    if driver == "sync":
        return sync_call()
    return anyio.run(async_call, backend=driver)


# --------------------------------------------------------------------------- trickled headers

TRICKLE_EVERY_S = 0.05  # far inside any read timeout: each read gets its byte in time
TRICKLE_FOR_S = 5.0  # the server's own bound, far past the deadline the test gives the call
DEADLINE_S = 0.5
# Past the deadline a call may take this long to end: a read's last wait and the unwinding.
MARGIN_S = 0.5


def trickle_status_and_headers(_: Received, conn: socket.socket, stop: threading.Event) -> None:
    """A status line and headers that never end, one byte every TRICKLE_EVERY_S."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-padding: " + b"a" * 4096
    ends_at = time.monotonic() + TRICKLE_FOR_S
    for byte in head:
        if stop.is_set() or time.monotonic() > ends_at:
            return
        conn.sendall(bytes([byte]))
        stop.wait(TRICKLE_EVERY_S)


@pytest.mark.parametrize("users_client", [False, True], ids=["our-client", "users-http-client"])
def test_headers_trickled_a_byte_at_a_time_cannot_outlast_the_deadline(
    driver: str, users_client: bool
) -> None:
    with RawServer(trickle_status_and_headers) as server:
        ended = call_once(
            driver,
            Registry.from_toml_text(config_at(server.url)),
            users_client=users_client,
            model="gpt-4o-mini",
            messages=MESSAGES,
            policy=Policy(deadline_s=DEADLINE_S),
        )
    assert ended.elapsed_s < DEADLINE_S + MARGIN_S
    error = ended.error
    assert isinstance(error, DeadlineExceededError)
    assert [a.error_type for a in error.attempts] == ["TimeoutError"]
    assert "no answer within" in (error.attempts[0].error or "")


# --------------------------------------------------------------------------- compressed bombs

CAP = 1024 * 1024  # the client's max_response_bytes
BOMB_EXPANDS_TO = 32 * 1024 * 1024  # what a gzip bomb's ~30 KiB become
# What a call may hold at once beyond the body it keeps: decompressed pieces, the raw reads,
# zlib's window, the call's own values. Inflating a bomb's read whole takes far more.
HEADROOM = 2 * 1024 * 1024


@functools.cache
def gzip_bomb(line: bytes) -> bytes:
    """``line`` over and over, BOMB_EXPANDS_TO bytes of it, gzipped a MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    mib = line * (1024 * 1024 // len(line))
    parts = [compressor.compress(mib) for _ in range(BOMB_EXPANDS_TO // len(mib))]
    return b"".join([*parts, compressor.flush()])


def send_gzip_bomb(_: Received, conn: socket.socket, __: threading.Event) -> None:
    """An answer whose gzipped body inflates far past the cap: an event stream of comment
    lines (which no chunk ever ends) for a stream, a zero-filled body otherwise."""
    body = gzip_bomb(b":" + b"0" * 1022 + b"\n")
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_a_gzip_bomb_is_refused_without_inflating_it(driver: str, stream: bool) -> None:
    with RawServer(send_gzip_bomb) as server:
        ended = call_once(
            driver,
            Registry.from_toml_text(config_at(server.url)),
            client_kwargs={"max_response_bytes": CAP},
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=stream,
            policy=Policy(max_attempts=1),
        )
    error = ended.error
    assert isinstance(error, AllRoutesFailedError)
    assert isinstance(error.last_error, ResponseFormatError)
    # A stream of comment lines is cut at its byte bound (the output its request allows).
    expected = "stream from openai went on past" if stream else f"larger than {CAP} bytes"
    assert expected in str(error.last_error)
    # An answer's body is refused at the cap; a stream's lines pass a piece at a time.
    assert ended.peak_bytes < (HEADROOM if stream else CAP + HEADROOM)
