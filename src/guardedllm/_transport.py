"""The default async transport: aiohttp's connection pool under asyncio, httpx's under trio.

With 64 requests in flight, a plain ``httpx.AsyncClient``'s pool spends ~4 ms of CPU per call
once 64 connections are open (encode/httpx#3215): on 2 cores against a loopback server it
managed 220-390 calls/s, against 3,000-5,500 for raw aiohttp and 900-1,300 for guardedllm over
aiohttp (``python benchmarks/run.py --only loopback``; docs/benchmarks.md). So under asyncio
``AsyncClient`` sends through aiohttp by default, behind the ordinary ``httpx.AsyncBaseTransport``
interface, so that everything above it (and a user's own ``http_client=``) stays httpx. aiohttp
runs only on asyncio; under trio the transport falls back to httpx's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import sniffio

if TYPE_CHECKING:
    from guardedllm._aiohttp import AiohttpTransport

__all__ = ["DEFAULT_LIMITS", "DefaultAsyncTransport"]

# Same pool ceiling as httpx's default, so behaviour does not change with the transport.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class DefaultAsyncTransport(httpx.AsyncBaseTransport):
    """aiohttp under asyncio, httpx's own pool under trio, chosen per request by the running
    async library (sniffio), so one ``AsyncClient`` type serves both."""

    def __init__(self, *, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._aiohttp: AiohttpTransport | None = None
        self._httpx: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport: httpx.AsyncBaseTransport
        if sniffio.current_async_library() == "asyncio":
            if self._aiohttp is None:
                from guardedllm._aiohttp import AiohttpTransport

                self._aiohttp = AiohttpTransport(limits=self._limits)
            transport = self._aiohttp
        else:
            if self._httpx is None:
                self._httpx = httpx.AsyncHTTPTransport(limits=self._limits)
            transport = self._httpx
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._aiohttp is not None:
            await self._aiohttp.aclose()
        if self._httpx is not None:
            await self._httpx.aclose()
