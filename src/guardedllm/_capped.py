"""Sync sockets that keep to the attempt's cap.

A blocking read cannot be cut short from outside, and httpcore gives each socket operation the
request's timeout afresh: a server that sends its status line and headers a byte at a time,
each inside the read timeout, holds a sync attempt for as long as it likes (the async driver's
cancel scope has no such gap). So the sync driver records when its attempt must be over
(``attempt_ends_at``, per thread), and the network streams of a capped pool shorten every
connect, TLS handshake, write and read to what is left of it; past it they raise httpcore's
timeout at once, which httpx reports as its own.

``cap_pools`` reaches the pools behind an ``httpx.Client``'s ``httpx.HTTPTransport``s (its own
and those mounted for proxies) through their private ``_pool._network_backend``; a transport
without one (a mock, a user's own) is left as it is, and the driver's checks between reads
remain its only bound. Outside an attempt (a stream's reads after its first chunk, a request
of the caller's own through a shared client) a capped stream passes every timeout through.

Imported with the first ``Client``: httpcore, which it needs, is not loaded by ``import httpx``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from guardedllm._transport import attempt_ends_at

__all__ = ["CappedBackend", "cap_pools"]


def _left(timeout: float | None, timed_out: type[httpcore.TimeoutException]) -> float | None:
    """``timeout``, shortened to what is left of the current attempt (if in one)."""
    ends_at = attempt_ends_at.get()
    if ends_at is None:
        return timeout
    left = ends_at - time.monotonic()
    if left <= 0:  # a zero timeout would make the socket non-blocking, not time out
        raise timed_out("the attempt ran out of time")
    return left if timeout is None or left < timeout else timeout


class _CappedStream(httpcore.NetworkStream):
    __slots__ = ("_stream",)

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        upgraded = self._stream.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
        )
        return _CappedStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class CappedBackend(httpcore.NetworkBackend):
    """Wraps a pool's network backend so that the streams it opens keep to the attempt's cap."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host,
            port,
            timeout=_left(timeout, httpcore.ConnectTimeout),
            local_address=local_address,
            socket_options=socket_options,
        )
        return _CappedStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(
            path, timeout=_left(timeout, httpcore.ConnectTimeout), socket_options=socket_options
        )
        return _CappedStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def cap_pools(client: httpx.Client) -> None:
    """Make the pools behind ``client`` keep each attempt to its cap, for the connections they
    open from now on. Idempotent; transports without an httpcore pool are left alone."""
    for transport in (client._transport, *client._mounts.values()):
        pool: Any = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, CappedBackend):
            pool._network_backend = CappedBackend(backend)
