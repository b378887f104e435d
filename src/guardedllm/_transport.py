"""How the drivers reach the network: the default async transport, the direct path to our own
client's transport, sending through a caller's client, and reading a body.

The default async transport is aiohttp's connection pool under asyncio, httpx's under trio.

With 64 requests in flight, a plain ``httpx.AsyncClient``'s pool spends ~4 ms of CPU per call
once 64 connections are open (encode/httpx#3215): on 2 cores against a loopback server it
managed 200-430 calls/s, against 3,500-4,700 for raw aiohttp and 1,250-1,650 for guardedllm over
aiohttp (``python benchmarks/run.py --only loopback``; docs/benchmarks.md). So under asyncio
``AsyncClient`` sends through aiohttp by default, behind the ordinary ``httpx.AsyncBaseTransport``
interface, so that everything above it (and a user's own ``http_client=``) stays httpx. aiohttp
runs only on asyncio; under trio the transport falls back to httpx's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, cast

import anyio
import httpx
import sniffio

from guardedllm._decoding import ACCEPT_ENCODING, Inflater, decoders_for, inflate
from guardedllm.engine._steps import with_client_headers
from guardedllm.errors import ClientClosedError
from guardedllm.providers.base import KEY_HEADERS

if TYPE_CHECKING:
    from guardedllm._aiohttp import AiohttpTransport

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_LIMITS",
    "ClientDefaults",
    "DefaultAsyncTransport",
    "afinish_body",
    "aiter_body",
    "aopen_direct",
    "aopen_through",
    "attempt_bound",
    "attempt_ends_at",
    "ensure_open",
    "iter_body",
    "open_direct",
    "open_through",
    "strip_keys_on_redirect",
]

# Same pool ceiling as httpx's default, so behaviour does not change with the transport.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

# When the sync attempt running in this thread must be over (``time.monotonic()``), or None
# outside one: the sync driver sets it around each attempt, and the sockets of a capped pool
# (``_capped.py``) keep every connect, write and read within it.
attempt_ends_at: ContextVar[float | None] = ContextVar("guardedllm_attempt_ends_at", default=None)


class Bound(Protocol):
    """What ``attempt_bound`` gives: an async context manager that may end its block."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool: ...


def attempt_bound(seconds: float) -> Bound:
    """An async attempt's hard cap: its block is cancelled ``seconds`` from now. It either
    raises ``TimeoutError`` then or ends the block quietly, so the driver treats both as the
    attempt running out of time.

    Under asyncio (3.11+) this is ``asyncio.timeout``, a timer on the event loop: anyio's
    ``CancelScope`` with ``anyio.current_time()`` does the same with a sniffio lookup and its
    own scope bookkeeping: 7 us an attempt against 4 us (9 us less per call in the overhead
    benchmark). Under trio (or asyncio on 3.10) it is anyio's scope, which anyio maps to
    trio's own."""
    if sys.version_info >= (3, 11) and sniffio.current_async_library() == "asyncio":
        # It never ends the block quietly (it raises), which ``Bound`` allows for.
        return cast("Bound", asyncio.timeout(seconds))
    return _ScopeBound(seconds)


class _ScopeBound:
    """anyio's cancel scope with a deadline, entered with ``async with``."""

    __slots__ = ("_scope",)

    def __init__(self, seconds: float) -> None:
        self._scope = anyio.CancelScope(deadline=anyio.current_time() + seconds)

    async def __aenter__(self) -> object:
        return self._scope.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return self._scope.__exit__(kind, error, traceback)


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


# --------------------------------------------------------------------------- a closed client


def ensure_open(client: httpx.Client | httpx.AsyncClient, *, own: bool) -> None:
    """Raise ``ClientClosedError`` if ``client`` is closed: before each attempt, so that the
    direct path (which bypasses ``httpx.Client.send`` and its check) and a user's client fail
    alike, with our error instead of httpx's bare ``RuntimeError``. ``own``: guardedllm made
    ``client`` (else it is the caller's ``http_client``)."""
    if not client.is_closed:
        return
    if own:
        raise ClientClosedError(
            "Cannot send a request, as the client has been closed. Make a new guardedllm "
            "client for further calls, or close this one only after its last call."
        )
    raise ClientClosedError(
        "Cannot send a request, as the client has been closed: the http_client given to "
        "guardedllm is closed. Keep it open while guardedllm uses it (a client you bring is "
        "never closed for you), or give guardedllm a new one."
    )


# --------------------------------------------------------------------------- the direct path

_httpx_logger = logging.getLogger("httpx")

# A header as ``httpx.Headers`` keeps it: the name as given, the name lowercased, the value.
_Row = tuple[bytes, bytes, bytes]


class ClientDefaults:
    """What ``httpx.Client.send`` adds to a request of a client guardedllm made, which the
    direct path adds itself: the client's default headers (each where the request has no
    header of its name) and its timeouts. Read once per client: they never change afterwards.

    A default goes straight into the request's header rows where httpx keeps them
    (``Headers._list``, whose layout is checked first): three ``headers[name] = value`` cost
    about 5 us a call, each re-encoding and re-scanning the rows, against 1 us. Where httpx
    keeps them otherwise, the defaults go in through its public interface."""

    __slots__ = ("_headers", "_rows", "_timeout")

    def __init__(self, client: httpx.Client | httpx.AsyncClient) -> None:
        self._headers = httpx.Headers(client.headers)
        self._timeout = client.timeout.as_dict()  # read by httpcore, never changed
        # httpx's own rows (once the layout is confirmed; each added where the request has no
        # header of its name, as ``with_client_headers`` adds them), or None: that function.
        self._rows: tuple[_Row, ...] | None = tuple(client.headers._list) if _rows_known() else None

    def apply(self, request: httpx.Request) -> None:
        headers = request.headers
        if self._rows is not None:
            rows = headers._list
            present = {name for _, name, _ in rows}
            rows.extend(row for row in self._rows if row[1] not in present)
        else:
            with_client_headers(request, self._headers)
        if "timeout" not in request.extensions:
            request.extensions["timeout"] = self._timeout


def _rows_known() -> bool:
    """Whether ``httpx.Headers`` keeps its rows as ``ClientDefaults`` expects."""
    probe = httpx.Headers({"X-Probe": "v"})
    return getattr(probe, "_list", None) == [(b"X-Probe", b"x-probe", b"v")]


def _log(request: httpx.Request, response: httpx.Response) -> None:
    if _httpx_logger.isEnabledFor(logging.INFO):  # the line httpx.Client.send logs
        _httpx_logger.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )


class _TimedStream(httpx.SyncByteStream):
    """Sets ``response.elapsed`` when the body is closed, as httpx's client does. It refers to
    its response weakly: the response refers to it, and a cycle would leave every streamed
    response to the garbage collector."""

    def __init__(self, stream: httpx.SyncByteStream, response: httpx.Response, start: float):
        self._stream = stream
        self._response = weakref.ref(response)
        self._start = start

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)

    def close(self) -> None:
        _set_elapsed(self._response, self._start)
        self._stream.close()


class _TimedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, response: httpx.Response, start: float):
        self._stream = stream
        self._response = weakref.ref(response)
        self._start = start

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        _set_elapsed(self._response, self._start)
        await self._stream.aclose()


def _set_elapsed(response: weakref.ref[httpx.Response], start: float) -> None:
    alive = response()
    if alive is not None:
        alive.elapsed = timedelta(seconds=time.perf_counter() - start)


def open_direct(
    client: httpx.Client, request: httpx.Request, defaults: ClientDefaults, *, timed: bool
) -> httpx.Response:
    """Send ``request`` through the transport of ``client`` (one guardedllm made), returning
    the response with its body unread, as ``client.send(request, stream=True)`` would.
    ``timed``: set ``elapsed`` when the body closes (a stream the caller gets to see). The
    caller has checked that ``client`` is open (``ensure_open``)."""
    defaults.apply(request)
    # The pool, or the proxy mounted for this URL (httpx reads proxies from the environment).
    transport = client._transport_for_url(request.url)
    start = time.perf_counter()
    response = transport.handle_request(request)
    response.request = request
    if timed:
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _TimedStream(response.stream, response, start)
    _log(request, response)
    return response


async def aopen_direct(
    client: httpx.AsyncClient, request: httpx.Request, defaults: ClientDefaults, *, timed: bool
) -> httpx.Response:
    """The async twin of ``open_direct``."""
    defaults.apply(request)
    transport = client._transport_for_url(request.url)
    start = time.perf_counter()
    response = await transport.handle_async_request(request)
    response.request = request
    if timed:
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TimedAsyncStream(response.stream, response, start)
    _log(request, response)
    return response


# --------------------------------------------------------------------------- a user's client
#
# A client the caller brings is sent through as it is: its auth, event hooks, mounts and
# redirect policy apply. The openai and anthropic SDKs follow redirects by default, and so may
# a caller's client; httpx strips only ``Authorization`` from a request it redirects to another
# origin, so the vendors' own key headers would go to whichever host the redirect names. A
# request hook strips them too, where httpx strips ``Authorization`` (as the openai SDK does
# for Azure's api-key): a provider request records where it was sent, and httpx hands a
# request's extensions on to each redirect it follows.

_SENT_TO = "guardedllm.sent_to"


def open_through(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    """Send ``request`` through a caller's ``client``, returning the response with its body
    unread. The caller has checked that ``client`` is open (``ensure_open``)."""
    return client.send(_through_client(request, client.headers), stream=True)


async def aopen_through(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """The async twin of ``open_through``."""
    return await client.send(_through_client(request, client.headers), stream=True)


def _through_client(request: httpx.Request, defaults: httpx.Headers) -> httpx.Request:
    request.extensions[_SENT_TO] = request.url
    # Only what _decoding.py decodes against the cap, over the client's default (which names
    # br and zstd when their packages are installed); a header the request names itself stays.
    asked = "accept-encoding" in request.headers
    with_client_headers(request, defaults)
    if not asked:
        request.headers["accept-encoding"] = ACCEPT_ENCODING
    return request


def strip_keys_on_redirect(client: httpx.Client | httpx.AsyncClient) -> None:
    """Hook ``client`` so that a provider request it redirects to another origin loses its
    key headers. Once per client; the hook leaves other requests alone."""
    hook = _astrip_keys if isinstance(client, httpx.AsyncClient) else _strip_keys
    hooks = client.event_hooks["request"]
    if hook not in hooks:
        hooks.append(hook)


def _strip_keys(request: httpx.Request) -> None:
    sent_to = request.extensions.get(_SENT_TO)
    if sent_to is None or sent_to is request.url:  # not ours, or not redirected
        return
    if not _may_carry_keys(sent_to, request.url):
        for name in KEY_HEADERS:
            request.headers.pop(name, None)


async def _astrip_keys(request: httpx.Request) -> None:
    _strip_keys(request)


def _may_carry_keys(sent_to: httpx.URL, url: httpx.URL) -> bool:
    """Whether a redirect from ``sent_to`` to ``url`` keeps the keys: httpx's rule for
    ``Authorization``. The same origin, or the same host moved from http to https on the
    default ports (the key only gains encryption)."""
    if url.host != sent_to.host:
        return False
    if (url.scheme, _port(url)) == (sent_to.scheme, _port(sent_to)):
        return True
    return (sent_to.scheme, _port(sent_to), url.scheme, _port(url)) == ("http", 80, "https", 443)


def _port(url: httpx.URL) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


# --------------------------------------------------------------------------- reading a body
#
# ``response.iter_bytes()`` runs every read through two generators, a content decoder and two
# chunkers: ~1.5 µs a read, a tenth of what a stream chunk costs guardedllm in all. For a body
# sent without a content encoding (what chat APIs send) they hand each read on unchanged, so
# the drivers read such a body straight from the stream and keep httpx's bookkeeping
# (``is_stream_consumed``, ``num_bytes_downloaded``, closing at the end) themselves. An encoded
# body is read raw and decompressed a bounded piece at a time (``_decoding.py``), never by
# httpx's decoders, which decompress a whole read at once. A body already read or closed goes
# through ``iter_bytes``, which raises as httpx does.


def _readable(response: httpx.Response) -> bool:
    return not (response.is_stream_consumed or response.is_closed)


def iter_body(response: httpx.Response) -> Iterator[bytes]:
    """What ``response.iter_bytes()`` yields, read straight from the stream when it can be,
    and decompressed against the size cap. ``httpx.DecodingError`` for an encoding not asked
    for."""
    if not _readable(response) or not isinstance(response.stream, httpx.SyncByteStream):
        return response.iter_bytes()
    encoding = response.headers.get("content-encoding")
    if encoding is None:
        return _reads(response, response.stream)
    return _inflated(response, decoders_for(encoding))


def _reads(response: httpx.Response, stream: httpx.SyncByteStream) -> Iterator[bytes]:
    response.is_stream_consumed = True
    received = 0
    for data in stream:
        if data:  # iter_bytes yields no empty chunk
            received += len(data)
            response._num_bytes_downloaded = received
            yield data
    response.close()


def _inflated(response: httpx.Response, inflaters: Sequence[Inflater]) -> Iterator[bytes]:
    for data in response.iter_raw():
        for piece in inflate(inflaters, data):
            yield piece
            if response.is_closed:  # the reader let go: inflate no more of this read
                break


def aiter_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The async twin of ``iter_body``."""
    if not _readable(response) or not isinstance(response.stream, httpx.AsyncByteStream):
        return response.aiter_bytes()
    encoding = response.headers.get("content-encoding")
    if encoding is None:
        return _areads(response, response.stream)
    return _ainflated(response, decoders_for(encoding))


async def afinish_body(response: httpx.Response, body: AsyncIterator[bytes] | None) -> None:
    """Close ``response`` and finish ``body``, its reader from ``aiter_body``, left part-read
    (a stream left early, an attempt that failed mid-body). httpx's body iterators are async
    generators nested several deep; closing the outer one leaves the inner ones to the garbage
    collector, which trio warns of (encode/httpx#3686), but after ``aclose`` the whole chain
    ends at once when read. Call it in a shielded scope: it must run even when cancelled."""
    await response.aclose()
    if body is not None:
        with contextlib.suppress(httpx.StreamError, httpx.TransportError):
            async for _ in body:
                pass


async def _areads(response: httpx.Response, stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    response.is_stream_consumed = True
    received = 0
    async for data in stream:
        if data:
            received += len(data)
            response._num_bytes_downloaded = received
            yield data
    await response.aclose()


async def _ainflated(
    response: httpx.Response, inflaters: Sequence[Inflater]
) -> AsyncIterator[bytes]:
    # A stream closed early is drained after its close (``afinish_body``): the rest of the
    # read in hand is skipped, and the closed body then ends at once. It is read to its end,
    # not left by a break, which would leave httpx's inner generators unfinished.
    raw = response.aiter_raw()
    try:
        async for data in raw:
            for piece in inflate(inflaters, data):
                if response.is_closed:
                    break
                yield piece
    except BaseException:
        # A body that does not inflate (past its cap, corrupt) or a reader gone: the answer
        # is over, and httpx's generators under ``raw`` are finished here, as the reader
        # finishes this one.
        await afinish_body(response, raw)
        raise
