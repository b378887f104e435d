"""``FakeProvider``: the public face of the fake: lifecycle, URLs, scripting, journal."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import anyio.to_thread

from guardedllm.errors import ArgumentError
from guardedllm.testing._catalog import ModelCatalog
from guardedllm.testing._journal import Journal, RecordedRequest
from guardedllm.testing._responder import Responder
from guardedllm.testing._script import (
    Behaviour,
    Endpoint,
    RuleBook,
    ScriptedToolCall,
    ScriptedUsage,
    ScriptRule,
    Vendor,
)
from guardedllm.testing._server import BackgroundServer, Handler

__all__ = ["FakeProvider"]

# How long wait_for_requests waits by default: far longer than a loopback request takes, short
# enough that a test waiting for a request that never comes fails promptly.
DEFAULT_WAIT_S = 5.0


class FakeProvider:
    """A real HTTP server on loopback that speaks the OpenAI, Azure OpenAI, Anthropic and
    Gemini wire formats, with scripted faults.

    ::

        with FakeProvider(models={"gpt-4o-mini"}) as fake:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x")
            fake.script(model="gpt-4o-mini", times=1, status=429, retry_after=2)
            ...
            assert fake.requests[0].headers["authorization"] == "Bearer x"

    Endpoints: ``POST /v1/chat/completions`` and ``/v1/embeddings`` (OpenAI);
    ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` and
    ``POST /openai/v1/chat/completions``, with ``.../embeddings`` beside each (Azure);
    ``POST /v1/messages`` and ``/v1/messages/count_tokens`` (Anthropic);
    ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent``,
    ``:countTokens``, ``:embedContent`` and ``:batchEmbedContents`` (Gemini;
    ``/v1/models/...`` too).

    ``models=None`` serves every model id; a collection makes every other id answer 404
    model-not-found in the vendor's format. ``port`` fixes the port (so a static config file
    can point at it); the default, 0, takes a free one. ``require_api_key`` makes requests
    without that key fail as the vendor fails them (401; Gemini: 403 without a key, 400
    API_KEY_INVALID with a wrong one). The server runs in its own thread and event loop, so
    sync, asyncio and trio clients can all use it; it is safe to script and read from any
    thread.
    """

    def __init__(
        self,
        *,
        models: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        require_api_key: str | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ArgumentError(f"port must be 0 (any free port) or a port number; got {port!r}")
        self.host = host
        self._wanted_port = port
        self._catalog = ModelCatalog(models)
        self._rules = RuleBook()
        self._journal = Journal()
        self._require_api_key = require_api_key
        self._server: BackgroundServer | None = None
        self._port: int | None = None
        self._lifecycle = threading.Lock()  # start/stop from several threads: one server

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeProvider:
        """Start serving (idempotent). After a ``stop()``, starts again: on the ``port``
        given, else on a new free one."""
        with self._lifecycle:
            if self._server is None:
                server = BackgroundServer(
                    self._make_handler, host=self.host, port=self._wanted_port
                )
                self._port = server.start()
                self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (idempotent). Hanging requests end with
        a dropped connection; the journal and scripts are kept."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is not None:
                server.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def _make_handler(self, stopping: asyncio.Event) -> Handler:
        return Responder(
            rules=self._rules,
            journal=self._journal,
            catalog=self._catalog,
            require_api_key=self._require_api_key,
            stopping=stopping,
        ).handle

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeProvider:
        # Starting takes a few milliseconds of thread hand-off: keep it off the caller's loop
        # (asyncio or trio, through anyio).
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._server is None or self._port is None:
            raise RuntimeError(
                "this FakeProvider is not running; call start() or use it as a context "
                "manager (`with FakeProvider() as fake:`) before asking for its address."
            )
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``, no trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For ``openai.OpenAI(base_url=...)``: ``base_url + "/v1"``."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``anthropic.Anthropic(base_url=...)``."""
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """The host root; requests go to ``/v1beta/models/{model}:generateContent``."""
        return self.base_url

    @property
    def azure_base_url(self) -> str:
        """For ``openai.AzureOpenAI(azure_endpoint=...)``."""
        return self.base_url

    # ------------------------------------------------------------------ models

    def add_model(self, model: str) -> None:
        """Serve ``model`` (again)."""
        self._catalog.add(model)

    def remove_model(self, model: str) -> None:
        """Answer 404 model-not-found for ``model`` from now on (even with ``models=None``)."""
        self._catalog.remove(model)

    @property
    def models(self) -> frozenset[str] | None:
        """The model ids served, or None when every id (not removed) is."""
        return self._catalog.served()

    # ------------------------------------------------------------------ scripting

    def script(
        self,
        *,
        model: str | None = None,
        vendor: Vendor | None = None,
        endpoint: Endpoint | None = None,
        times: int | None = None,
        status: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
        latency: float = 0.0,
        hang: bool = False,
        drop: bool = False,
        cut_after_chunks: int | None = None,
        malformed_chunk: bool = False,
        first_chunk_delay: float = 0.0,
        chunk_delay: float = 0.0,
        chunks: int | None = None,
        content: str | None = None,
        reasoning: str | None = None,
        tool_calls: Iterable[ScriptedToolCall | Mapping[str, Any]] | None = None,
        finish_reason: str | None = None,
        usage: ScriptedUsage | Mapping[str, int] | None = None,
        not_found: bool = False,
        body: bytes | None = None,
        oversized: int | None = None,
    ) -> ScriptRule:
        """Queue a rule for the next ``times`` requests (None: all) matching ``model``,
        ``vendor`` ("openai", "azure", "anthropic", "gemini") and ``endpoint`` ("chat",
        "count_tokens", "embeddings"); None matches anything.

        Rules are FIFO: a request takes the oldest matching rule with uses left, so queued
        one-shot rules play in order; a ``times=None`` rule shadows later ones until
        cancelled. Behaviours (combine where it makes sense):

        - ``status`` (>= 400): that status with the vendor's exact error body;
          ``error_code`` / ``error_message`` replace its code (Anthropic: error type;
          Gemini: status name) and message. ``retry_after`` (seconds, or a str sent
          verbatim) sets ``Retry-After``, ``retry_after_ms`` sets ``retry-after-ms``;
          ``headers`` adds any response headers.
        - ``latency``: wait before answering; ``hang``: never answer (until the client
          gives up or the fake stops); ``drop``: close the connection without an answer.
        - streams: ``chunks`` (number of content pieces), ``first_chunk_delay`` (after
          the headers), ``chunk_delay`` (between events), ``cut_after_chunks`` (drop after
          N content pieces, never sending the terminal event; 0 = right after the
          headers), ``malformed_chunk`` (a non-JSON data event mid-stream).
          ``first_chunk_delay`` also delays a non-streaming body after its headers.
        - the reply: ``content``, ``tool_calls`` (``[{"name": ..., "arguments": {...}}]``,
          used when the request declares tools), ``finish_reason`` (OpenAI words, mapped
          per vendor, or a vendor value verbatim), ``usage``
          (``{"prompt_tokens", "completion_tokens", "cached_tokens"}``), ``reasoning`` (the
          thinking text, sent only when the request asks for thinking: Anthropic
          ``thinking`` enabled, Gemini ``thinkingConfig.includeThoughts``).
        - ``not_found``: 404 model-not-found; ``body``: these raw bytes as the body
          (status 200 unless ``status``); ``oversized``: pad the JSON body with spaces to
          N bytes (a stream: send an N-byte SSE comment line first).
        """
        behaviour = Behaviour(
            status=status,
            error_code=error_code,
            error_message=error_message,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            headers=dict(headers or {}),
            latency=latency,
            hang=hang,
            drop=drop,
            cut_after_chunks=cut_after_chunks,
            malformed_chunk=malformed_chunk,
            first_chunk_delay=first_chunk_delay,
            chunk_delay=chunk_delay,
            chunks=chunks,
            content=content,
            reasoning=reasoning,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            usage=usage,
            not_found=not_found,
            body=body,
            oversized=oversized,
        )
        return self._rules.add(
            behaviour, model=model, vendor=vendor, endpoint=endpoint, times=times
        )

    def reset(self) -> None:
        """Forget every rule (cancelling them) and every recorded request."""
        self._rules.clear()
        self._journal.clear()

    # ------------------------------------------------------------------ journal

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        return self._journal.snapshot()

    def requests_for(
        self, model: str | None = None, vendor: Vendor | None = None
    ) -> list[RecordedRequest]:
        """The recorded requests for ``model`` and/or ``vendor`` (None matches any)."""
        return [
            r
            for r in self._journal.snapshot()
            if (model is None or r.model == model) and (vendor is None or r.vendor == vendor)
        ]

    def wait_for_requests(
        self, count: int, timeout: float = DEFAULT_WAIT_S
    ) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived; raises ``TimeoutError`` after
        ``timeout`` seconds."""
        return self._journal.wait_for(count, timeout)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"FakeProvider({where}, rules={len(self._rules)}, requests={len(self.requests)})"
