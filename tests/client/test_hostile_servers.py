"""What a server that misbehaves on purpose cannot do to a call, through every driver: hold it
past its deadline by trickling bytes, or take more memory than ``max_response_bytes`` with a
compressed bomb. The servers are raw loopback sockets (``raw_server.py``)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import anyio
import httpx
import pytest

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.errors import DeadlineExceededError, GuardedLLMError
from raw_server import RawServer, Received
from support import ENVIRON, config_at

MESSAGES = [{"role": "user", "content": "hi"}]


def call_once(
    driver: str, registry: Registry, *, users_client: bool, **kwargs: Any
) -> tuple[BaseException | None, float]:
    """One ``create(**kwargs)`` through a client of ``driver`` (over a plain httpx client of
    the caller's if ``users_client``): the guardedllm error it raised, and how long the call
    took, the client's construction and closing excluded."""

    def sync_call() -> tuple[BaseException | None, float]:
        http = httpx.Client() if users_client else None
        with Client(registry, environ=ENVIRON, http_client=http) as client:
            started = time.monotonic()
            try:
                client.chat.completions.create(**kwargs)
            except GuardedLLMError as exc:
                return exc, time.monotonic() - started
            finally:
                if http is not None:
                    http.close()
            return None, time.monotonic() - started

    async def async_call() -> tuple[BaseException | None, float]:
        http = httpx.AsyncClient() if users_client else None
        async with AsyncClient(registry, environ=ENVIRON, http_client=http) as client:
            started = time.monotonic()
            try:
                await client.chat.completions.create(**kwargs)
            except GuardedLLMError as exc:
                return exc, time.monotonic() - started
            finally:
                if http is not None:
                    await http.aclose()
            return None, time.monotonic() - started

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
        error, elapsed = call_once(
            driver,
            Registry.from_toml_text(config_at(server.url)),
            users_client=users_client,
            model="gpt-4o-mini",
            messages=MESSAGES,
            policy=Policy(deadline_s=DEADLINE_S),
        )
    assert elapsed < DEADLINE_S + MARGIN_S
    assert isinstance(error, DeadlineExceededError)
    assert [a.error_type for a in error.attempts] == ["TimeoutError"]
    assert "no answer within" in (error.attempts[0].error or "")
