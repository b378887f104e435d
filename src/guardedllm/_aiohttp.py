"""An httpx transport over aiohttp's connection pool (asyncio only).

aiohttp's exceptions are mapped onto httpx's, so the engine classifies failures the same way
whichever pool carried the request. Imported only when an asyncio call first needs it: aiohttp
takes longer to import than the rest of guardedllm together.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

import aiohttp
import httpx

from guardedllm._transport import DEFAULT_LIMITS

__all__ = ["AiohttpTransport"]

# aiohttp exception -> httpx exception, most specific first: a connect timeout is a
# ServerTimeoutError too, and a connector error is a connection error too.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientError, httpx.TransportError),
)


def _as_httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for ``exc``, to raise ``from exc``. ``exc`` loses its traceback: aiohttp
    raises one module-level instance for every read of a released response, and an instance
    raised again keeps the traceback of every raise before (each frame with its locals), so
    that traceback would hold every stream it ever went through."""
    exc.__traceback__ = None
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc) or type(exc).__name__, request=request)
    return httpx.TransportError(str(exc), request=request)  # pragma: no cover - table ends in base


@functools.lru_cache(maxsize=64)
def _client_timeout(
    pool: float | None, connect: float | None, read: float | None
) -> aiohttp.ClientTimeout:
    # Most attempts carry their deployment's timeout, the same on every call; ClientTimeout is
    # frozen, so one value serves them all. (An attempt cut short by its deadline misses.)
    return aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)


class _AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Once released, the body ends here: a read would raise aiohttp's shared
        # connection-closed error (see _as_httpx_error) only to be suppressed by the caller.
        content = self._response.content
        try:
            while not self._released:
                data = await content.readany()
                if not data:
                    return
                yield data
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _as_httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        self._released = True
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends through one ``aiohttp.ClientSession`` (asyncio only).

    The session is made on first use, inside the running event loop, and belongs to that loop:
    use one transport (one ``AsyncClient``) per event loop, and close it in the same loop.
    """

    def __init__(self, *, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry or 15.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._get_session()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=_client_timeout(
                    timeout.get("pool"), timeout.get("connect"), timeout.get("read")
                ),
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _as_httpx_error(exc, request) from exc
        except ValueError as exc:  # aiohttp refuses a malformed header (a key with a newline)
            raise httpx.LocalProtocolError(
                "a request header is malformed", request=request
            ) from exc
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_AiohttpStream(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
