"""How the fake answers one HTTP request: route it, record it, apply the scripted behaviour.

Order of decisions for a request (each step can end it):

1. read the body, find the vendor and endpoint from the path, record the request;
2. take the behaviour of the first matching script rule (FIFO, see ``_script``);
3. ``latency`` sleeps, then ``hang`` / ``drop`` leave without an answer;
4. a path no vendor serves answers 404 in the vendor's shape its prefix suggests;
5. scripted answers: ``not_found``, an error ``status``, a raw ``body``;
6. what the real vendor checks: required headers/query, the API key (only with
   ``require_api_key``), JSON syntax, required fields, the model id;
7. the reply, as JSON or as a stream with the scripted delays and faults.

Every wait races the server's ``stopping`` event, so a hang or a long delay never holds up
``stop()``; a client that disconnects cancels its handler (aiohttp's handler cancellation).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

from guardedllm.testing._anthropic import AnthropicFormat
from guardedllm.testing._catalog import ModelCatalog
from guardedllm.testing._embeddings import embeddings_answer, read_embeddings
from guardedllm.testing._gemini import GeminiFormat
from guardedllm.testing._journal import Journal, RecordedRequest
from guardedllm.testing._openai import AzureFormat, OpenAIFormat
from guardedllm.testing._replies import (
    Exchange,
    Failure,
    Rejected,
    Route,
    StreamEvent,
    VendorFormat,
    compose_reply,
)
from guardedllm.testing._script import DEFAULT_BEHAVIOUR, Behaviour, Endpoint, RuleBook, Vendor

__all__ = ["Responder", "route_for"]

_GEMINI = re.compile(
    r"/(?:v1|v1beta)/models/(?P<model>[^/:]+):"
    r"(?P<action>generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)"
)
_AZURE_DEPLOYMENT = re.compile(
    r"/openai/deployments/(?P<model>[^/]+)/(?P<endpoint>chat/completions|embeddings)"
)
_GEMINI_ENDPOINTS: dict[str, Endpoint] = {
    "countTokens": "count_tokens",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
}

FORMATS: dict[Vendor, VendorFormat] = {
    "openai": OpenAIFormat(),
    "azure": AzureFormat(),
    "anthropic": AnthropicFormat(),
    "gemini": GeminiFormat(),
}


def route_for(method: str, path: str) -> Route | None:
    """The vendor endpoint ``method path`` reaches, or None if no vendor serves it."""
    if method != "POST":
        return None
    if path == "/v1/chat/completions":
        return Route(vendor="openai", endpoint="chat")
    if path == "/v1/messages":
        return Route(vendor="anthropic", endpoint="chat")
    if path == "/v1/messages/count_tokens":
        return Route(vendor="anthropic", endpoint="count_tokens")
    if path == "/v1/embeddings":
        return Route(vendor="openai", endpoint="embeddings")
    if path == "/openai/v1/chat/completions":
        return Route(vendor="azure", endpoint="chat")
    if path == "/openai/v1/embeddings":
        return Route(vendor="azure", endpoint="embeddings")
    if match := _AZURE_DEPLOYMENT.fullmatch(path):
        endpoint: Endpoint = "chat" if match["endpoint"] == "chat/completions" else "embeddings"
        return Route(vendor="azure", endpoint=endpoint, path_model=match["model"])
    if match := _GEMINI.fullmatch(path):
        action = match["action"]
        return Route(
            vendor="gemini",
            endpoint=_GEMINI_ENDPOINTS.get(action, "chat"),
            path_model=match["model"],
            stream=action == "streamGenerateContent",
            batch=action == "batchEmbedContents",
        )
    return None


def _vendor_by_prefix(path: str) -> Vendor:
    if path.startswith("/openai/"):
        return "azure"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/") or ":" in path:
        return "gemini"
    return "openai"


def _drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the TCP connection at once, with no (further) bytes."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Never sent: aiohttp's attempt to write it meets the closed transport and gives up.
    return web.Response()


def _with_malformed(events: list[StreamEvent], garbage: bytes) -> list[StreamEvent]:
    """``events`` with a garbage event after the middle piece (before the end if none)."""
    piece_positions = [i for i, e in enumerate(events) if e.kind == "piece"]
    if piece_positions:
        at = piece_positions[max(1, len(piece_positions) // 2) - 1] + 1
    else:
        at = next(i for i, e in enumerate(events) if e.kind == "close")
    return [*events[:at], StreamEvent(kind="frame", data=garbage), *events[at:]]


@attrs.frozen(kw_only=True)
class _Incoming:
    """One received request, read once."""

    number: int  # 1, 2, 3... in arrival order: makes ids and request ids deterministic
    method: str
    path: str
    route: Route | None
    fmt: VendorFormat
    headers: dict[str, str]
    query: dict[str, str]
    payload: Any
    valid_json: bool
    model: str | None

    def failure(self, failure: Failure, headers: dict[str, str]) -> web.Response:
        status, error = self.fmt.error(failure)
        headers["Content-Type"] = self.fmt.json_content_type
        return web.Response(status=status, body=_dumps(error), headers=headers)


class Responder:
    """The request handler. Lives on the server's event loop; its collaborators (rules,
    journal, catalog) are thread-safe because the test's thread changes them."""

    def __init__(
        self,
        *,
        rules: RuleBook,
        journal: Journal,
        catalog: ModelCatalog,
        require_api_key: str | None,
        stopping: asyncio.Event,
    ) -> None:
        self._rules = rules
        self._journal = journal
        self._catalog = catalog
        self._api_key = require_api_key
        self._stopping = stopping
        self._numbers = itertools.count(1)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if the server began stopping meanwhile."""
        if seconds <= 0:
            return self._stopping.is_set()
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        incoming = await self._receive(request)
        route = incoming.route
        behaviour = (
            self._rules.take(route.vendor, incoming.model, route.endpoint)
            if route
            else DEFAULT_BEHAVIOUR
        )
        if await self._pause(behaviour.latency) or behaviour.drop:
            return _drop(request)
        if behaviour.hang:
            await self._stopping.wait()
            return _drop(request)
        headers = self._headers(incoming.fmt, behaviour, incoming.number)
        scripted = self._scripted(incoming, behaviour, headers)
        if scripted is not None:
            return scripted
        assert route is not None  # _scripted answered every unrouted request
        if route.endpoint == "embeddings":
            try:
                self._admit(incoming, route)
                embedding = read_embeddings(incoming.fmt.vendor, route, incoming.payload)
                self._known(embedding.model)
            except Rejected as rejected:
                return incoming.failure(rejected.failure, headers)
            headers["Content-Type"] = incoming.fmt.json_content_type
            body = _dumps(embeddings_answer(embedding))
            return await self._send(request, body, behaviour, headers)
        try:
            exchange = self._check(incoming, route)
        except Rejected as rejected:
            return incoming.failure(rejected.failure, headers)
        if exchange.endpoint == "count_tokens":
            headers["Content-Type"] = incoming.fmt.json_content_type
            body = _dumps(incoming.fmt.count_tokens(exchange))
            return web.Response(body=body, headers=headers)
        reply = compose_reply(exchange, behaviour)
        if exchange.stream:
            events = incoming.fmt.stream(exchange, reply, incoming.number)
            if behaviour.malformed_chunk:
                events = _with_malformed(events, incoming.fmt.malformed_event())
            headers["Content-Type"] = incoming.fmt.stream_content_type(exchange)
            headers["Cache-Control"] = "no-cache"
            return await self._stream(request, events, behaviour, headers)
        body = _dumps(incoming.fmt.completion(exchange, reply, incoming.number))
        if behaviour.oversized and len(body) < behaviour.oversized:
            body += b" " * (behaviour.oversized - len(body))  # still valid JSON
        headers["Content-Type"] = incoming.fmt.json_content_type
        return await self._send(request, body, behaviour, headers)

    async def _receive(self, request: web.BaseRequest) -> _Incoming:
        """Read and record one request."""
        body = await request.read()
        route = route_for(request.method, request.path)
        try:
            payload: Any = json.loads(body)
            valid_json = True
        except (ValueError, UnicodeDecodeError):
            payload, valid_json = None, False
        model: str | None = None
        if route is not None:
            model = route.path_model
            if model is None and isinstance(payload, Mapping):
                body_model = payload.get("model")
                model = body_model if isinstance(body_model, str) else None
        incoming = _Incoming(
            number=next(self._numbers),
            method=request.method,
            path=request.path,
            route=route,
            fmt=FORMATS[route.vendor if route else _vendor_by_prefix(request.path)],
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query),
            payload=payload,
            valid_json=valid_json,
            model=model,
        )
        streaming = route is not None and (
            route.stream or (isinstance(payload, Mapping) and payload.get("stream") is True)
        )
        self._journal.append(
            RecordedRequest(
                method=incoming.method,
                path=incoming.path,
                query=incoming.query,
                headers=incoming.headers,
                json=payload,
                body=body,
                vendor=route.vendor if route else None,
                endpoint=route.endpoint if route else None,
                model=model,
                stream=streaming,
            )
        )
        return incoming

    def _headers(self, fmt: VendorFormat, behaviour: Behaviour, number: int) -> dict[str, str]:
        headers = fmt.response_headers(number)
        if isinstance(behaviour.retry_after, str):
            headers["Retry-After"] = behaviour.retry_after
        elif behaviour.retry_after is not None:
            headers["Retry-After"] = f"{behaviour.retry_after:g}"
        if behaviour.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{behaviour.retry_after_ms:g}"
        headers.update(behaviour.headers)
        return headers

    def _scripted(
        self, incoming: _Incoming, behaviour: Behaviour, headers: dict[str, str]
    ) -> web.Response | None:
        """The answer a script (or an unknown path) imposes, before any vendor check."""
        if incoming.route is None:
            route = f"{incoming.method} {incoming.path}"
            return incoming.failure(Failure(kind="unknown_route", status=404, route=route), headers)
        model = incoming.model or ""
        if behaviour.not_found:
            return incoming.failure(
                Failure(kind="model_not_found", status=404, model=model), headers
            )
        if behaviour.body is not None:
            headers["Content-Type"] = incoming.fmt.json_content_type
            status = behaviour.status or 200
            return web.Response(status=status, body=behaviour.body, headers=headers)
        if behaviour.status is not None and behaviour.status >= 400:
            failure = Failure(
                kind="status",
                status=behaviour.status,
                message=behaviour.error_message,
                code=behaviour.error_code,
                model=model,
            )
            return incoming.failure(failure, headers)
        return None

    def _check(self, incoming: _Incoming, route: Route) -> Exchange:
        """What the real vendor checks before answering, in its order; raises ``Rejected``."""
        self._admit(incoming, route)
        exchange = incoming.fmt.interpret(route, incoming.payload, incoming.query)
        self._known(exchange.model)
        return exchange

    def _admit(self, incoming: _Incoming, route: Route) -> None:
        """The checks before the vendor reads the body: the path's own, the key, the JSON."""
        fmt = incoming.fmt
        fmt.preflight(route, incoming.headers, incoming.query)
        if self._api_key is not None:
            given = fmt.credential(incoming.headers, incoming.query)
            if not given:
                raise Rejected(Failure(kind="missing_key", status=401))
            if given != self._api_key:
                raise Rejected(Failure(kind="wrong_key", status=401))
        if not incoming.valid_json:
            raise Rejected(Failure(kind="malformed_json", status=400))

    def _known(self, model: str) -> None:
        if not self._catalog.knows(model):
            raise Rejected(Failure(kind="model_not_found", status=404, model=model))

    async def _send(
        self, request: web.BaseRequest, body: bytes, behaviour: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        status = behaviour.status or 200
        if not behaviour.first_chunk_delay:
            return web.Response(status=status, body=body, headers=headers)
        # Headers now, body later: a read timeout after the status line.
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        if await self._pause(behaviour.first_chunk_delay):
            return _drop(request)
        await response.write(body)
        await response.write_eof()
        return response

    async def _stream(
        self,
        request: web.BaseRequest,
        events: list[StreamEvent],
        behaviour: Behaviour,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        cut = behaviour.cut_after_chunks
        pieces = 0
        try:
            if behaviour.oversized:  # one comment line longer than any parser should buffer
                await response.write(b":" + b" " * behaviour.oversized + b"\n\n")
            for i, event in enumerate(events):
                if cut is not None and (cut == 0 or pieces >= cut or event.kind == "close"):
                    return _drop(request)
                delay = behaviour.first_chunk_delay if i == 0 else behaviour.chunk_delay
                if await self._pause(delay):
                    return _drop(request)
                await response.write(event.data)
                pieces += event.kind == "piece"
            await response.write_eof()
        except ConnectionError:  # the client went away mid-stream; nothing to answer
            pass
        return response


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
