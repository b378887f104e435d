"""The contract every wire format meets, and the helpers they share.

A wire format is pure: it builds an ``httpx.Request`` from a ``ChatRequest`` and a ``Target``,
and turns response bytes into OpenAI-shaped values or typed errors. It never sends, sleeps or
reads a clock; the drivers do that. Building an ``httpx.Request`` is not I/O: it is a value.
"""

from __future__ import annotations

import email.utils
import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timezone
from typing import Any, Protocol, runtime_checkable

import attrs
import httpx

from guardedllm.errors import InvalidRequestError, ProviderError, ResponseFormatError
from guardedllm.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    CreateEmbeddingResponse,
    EmbeddingRequest,
    Usage,
)

__all__ = [
    "KEY_HEADERS",
    "EmbeddingWire",
    "GuardedFields",
    "KeyMaskedHeaders",
    "StreamDecoder",
    "Target",
    "TokenCounter",
    "WireFormat",
    "decode_json",
    "first_header",
    "is_context_length_error",
    "load_json",
    "merge_vendor_fields",
    "post_request",
    "read_count",
    "retry_after_seconds",
    "wait_seconds",
]

# How vendors say a prompt is longer than the model's window: OpenAI's code (and its words,
# which vLLM and other compatible servers copy: "This model's maximum context length is 4096
# tokens"), Anthropic's "prompt is too long: 210000 tokens > 200000 maximum", Gemini's "The input
# token count (1200000) exceeds the maximum number of tokens allowed (1048576)".
_CONTEXT_LENGTH_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_LENGTH_TEXT = re.compile(
    r"maximum context length|context[ _]length[ _]exceeded|prompt is too long"
    r"|input token count.*exceeds the maximum|exceeds the (model's )?context window",
    re.IGNORECASE,
)


def is_context_length_error(status: int, code: str | None, message: str) -> bool:
    """Whether a vendor's error says the prompt does not fit the model's context window (a
    400, or a 413 from a proxy in front of it): the same request may fit a larger model."""
    if status not in (400, 413):
        return False
    return code in _CONTEXT_LENGTH_CODES or _CONTEXT_LENGTH_TEXT.search(message) is not None


# The headers in which the wire formats send a provider's key: OpenAI's bearer token, Azure's
# api-key, Anthropic's x-api-key, Gemini's x-goog-api-key.
KEY_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "x-goog-api-key"})


@attrs.frozen(kw_only=True)
class Target:
    """Where one attempt goes: a deployment resolved to a concrete endpoint and model.

    ``api_key`` is read from the provider's environment variable when the call is made and
    lives only here, for the one attempt; it is never part of a repr.
    """

    deployment: str
    provider: str
    kind: str
    base_url: str
    model: str
    api_key: str | None = attrs.field(default=None, repr=False)
    api_version: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    # The deployment's output ceiling: vendors that require max_tokens (Anthropic) get this
    # when the caller gave none.
    max_output_tokens: int | None = None
    # An embedding deployment's declared vector length: sent to a vendor whose models take any
    # length (Gemini) when the caller asks for none, so that a route's fallbacks, which share
    # one length, answer in it.
    dimensions: int | None = None

    def url(self, path: str) -> str:
        """``base_url`` joined with ``path`` (exactly one slash between them)."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")


class StreamDecoder(Protocol):
    """Turns a vendor's streamed body into OpenAI-shaped chunks, incrementally.

    ``feed`` may raise a ``ProviderError`` (the vendor sent an error event) or a
    ``ResponseFormatError`` (garbage). ``close`` is called at the end of the bytes: it raises
    ``ResponseFormatError`` when the vendor's terminal event never came, so a cut stream is never
    reported as complete.
    """

    @property
    def done(self) -> bool:
        """True once the vendor's terminal event has arrived."""
        ...

    @property
    def usage(self) -> Usage | None:
        """The usage the stream reported, once it has."""
        ...

    def feed(self, data: bytes) -> list[ChatCompletionChunk]: ...

    def close(self) -> list[ChatCompletionChunk]: ...


class WireFormat(Protocol):
    """One vendor API: request building, response parsing, error mapping. Pure."""

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        """The HTTP request for ``request`` at ``target``, streaming if ``request.stream``.

        Raises ``InvalidRequestError`` when the request uses something this vendor cannot
        express (say so by name; never drop a parameter silently).
        """
        ...

    def parse_response(self, body: bytes, target: Target) -> ChatCompletion:
        """Parse a 2xx non-streaming body. Raises ``ResponseFormatError`` on malformed bodies."""
        ...

    def parse_error(
        self, status: int, headers: httpx.Headers, body: bytes, target: Target, *, now: float
    ) -> ProviderError:
        """The typed error for a non-2xx answer. ``now`` (Unix time) resolves an HTTP-date
        Retry-After."""
        ...

    def stream_decoder(self, target: Target) -> StreamDecoder:
        """A fresh decoder for one streamed 2xx body."""
        ...


@runtime_checkable
class EmbeddingWire(Protocol):
    """A wire format whose vendor has an embeddings endpoint (OpenAI, Azure, OpenAI-compatible,
    Gemini): ``build_request`` builds it for a request with ``embedding`` set, and this reads
    its 2xx answer. The engine asks for it before sending an embeddings call anywhere."""

    def parse_embeddings(
        self, body: bytes, target: Target, embedding: EmbeddingRequest
    ) -> CreateEmbeddingResponse:
        """Parse a 2xx embeddings body. Raises ``ResponseFormatError`` on malformed bodies."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """A vendor's count-tokens endpoint, for wire formats whose vendor has one (Anthropic,
    Gemini). Used when a policy asks for exact counts where our tokenizer only stands in."""

    def build_count_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        """The request that counts ``request``'s input tokens as the vendor bills them."""
        ...

    def parse_count(self, body: bytes, target: Target) -> int:
        """The input-token count in a 2xx count answer; ``ResponseFormatError`` otherwise."""
        ...


# --------------------------------------------------------------------------- vendor fields

# The fields of one vendor's body that the guards count on, each a path of keys into the body,
# and what to pass to ``create`` instead. Each wire format declares its own.
GuardedFields = Mapping[tuple[str, ...], str]


def merge_vendor_fields(
    body: Mapping[str, Any], request: ChatRequest, target: Target, guarded: GuardedFields
) -> dict[str, Any]:
    """``body`` with the caller's vendor fields merged in, as they are: ``extra_body``, then
    ``provider_options[target.kind]``, then ``provider_options[target.provider]`` (a provider's
    own name is more specific than its kind, so it comes last).

    The merge is deep for objects: a key both hold as objects is merged key by key, and at the
    leaves (anything else, lists included) the caller's value wins; ``body`` is not changed.
    So ``{"generationConfig": {"thinkingConfig": {...}}}`` sits beside the generationConfig the
    wire format built. A layer that sets a ``guarded`` field, or replaces an object that holds
    one, is refused with ``InvalidRequestError`` naming the field and the argument to use: the
    estimate, the cost reservation and the answer's reading rest on those fields (the model,
    the messages, the output limit, streaming, the number of choices), and a value the guards
    never saw would break them silently.
    """
    merged = dict(body)
    for source, layer in _vendor_layers(request, target):
        for path, instead in guarded.items():
            if _reaches(layer, path):
                raise InvalidRequestError(
                    f"{target.deployment}: {source} sets `{'.'.join(path)}`, which the guards "
                    f"count on (the estimate, the cost reservation, the reading of the answer); "
                    f"{instead}."
                )
        merged = _merged(merged, layer, source)
    return merged


def _vendor_layers(request: ChatRequest, target: Target) -> list[tuple[str, Mapping[str, Any]]]:
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if request.extra_body:
        layers.append(("extra_body", request.extra_body))
    for key in dict.fromkeys((target.kind, target.provider)):  # once if the name is the kind
        options = request.provider_options.get(key)
        if options:
            layers.append((f"provider_options[{key!r}]", options))
    return layers


def _reaches(layer: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether merging ``layer`` would change the field at ``path``: it sets the field, or
    puts a value that is not an object where an object on the way to it is."""
    node: object = layer
    for key in path:
        if not isinstance(node, Mapping):
            return True
        if key not in node:
            return False
        node = node[key]
    return True


def _merged(base: Mapping[str, Any], layer: Mapping[str, Any], where: str) -> dict[str, Any]:
    # Copies only along the merged paths: ``base`` may hold the caller's own objects (a
    # response schema, say), which are never written to.
    out = dict(base)
    for key, value in layer.items():
        _check_key(key, where)
        mine = out.get(key)
        if isinstance(mine, Mapping) and isinstance(value, Mapping):
            out[key] = _merged(mine, value, f"{where}.{key}")
        else:
            out[key] = _plain(value, f"{where}.{key}")
    return out


def _plain(value: object, where: str) -> Any:
    """``value`` with every mapping a dict and every tuple a list, for json.dumps (which
    would write a number key as a string without a word)."""
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            _check_key(key, where)
            result[key] = _plain(item, f"{where}.{key}")
        return result
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _check_key(key: object, where: str) -> None:
    if not isinstance(key, str):
        raise InvalidRequestError(
            f"{where} has the key {key!r}, which is not a string; JSON object keys are strings."
        )


# Headers that httpx.Request works out itself from the URL and the body; a request whose own
# headers name one of them is built by httpx.Request, which knows how they combine.
_AUTO_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


@functools.lru_cache(maxsize=256)
def _parsed_url(
    base_url: str, path: str, params: tuple[tuple[str, str], ...] | None
) -> tuple[httpx.URL, tuple[tuple[str, str], ...]]:
    # A deployment's endpoint is the same on every call: parse it once (httpx.URL is immutable),
    # with the Host header httpx.Request would make of it (none for a URL without a host).
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    parsed = httpx.URL(url) if params is None else httpx.URL(url, params=dict(params))
    return parsed, ((("Host", parsed.netloc.decode("ascii")),) if parsed.host else ())


def post_request(
    target: Target,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Sequence[tuple[str, str]],
    content: bytes,
) -> httpx.Request:
    """``httpx.Request("POST", target.url(path), params=..., headers=..., content=...)``,
    header for header and byte for byte, without re-parsing the endpoint on every call."""
    url, host = _parsed_url(
        target.base_url, path, None if params is None else tuple(params.items())
    )
    if any(name.lower() in _AUTO_HEADERS for name, _ in headers):
        request = httpx.Request("POST", url, headers=headers, content=content)
    else:
        # What httpx.Request(content=...) adds, in its order: Host first, Content-Length last.
        raw = [*host, *headers]
        raw.append(("Content-Length", str(len(content))))
        request = httpx.Request("POST", url, headers=raw, stream=httpx.ByteStream(content))
        request.read()  # as with content=...: the body is known, and request.content works
    request.headers = KeyMaskedHeaders(request.headers)
    return request


class KeyMaskedHeaders(httpx.Headers):
    """A request's headers, whose repr masks every header that carries a provider's key
    (``KEY_HEADERS``) as httpx masks ``Authorization``: a request printed or logged (say
    ``stream.response.request``) never shows an Azure, Anthropic or Gemini key."""

    def __repr__(self) -> str:
        items = [
            (name, "[secure]" if name.lower() in KEY_HEADERS else value)
            for name, value in self.multi_items()
        ]
        shown: object = dict(items) if len(dict(items)) == len(items) else items
        encoding = f", encoding={self.encoding!r}" if self.encoding != "ascii" else ""
        return f"Headers({shown!r}{encoding})"


def read_count(body: bytes, target: Target, field: str) -> int:
    """The non-negative integer ``field`` of a JSON count answer."""
    data = decode_json(body, target, what="token count")
    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ResponseFormatError(
            f"{target.deployment}: the token count from {target.provider} has no integer "
            f"`{field}`; the vendor's count endpoint answered something else.",
            deployment=target.deployment,
            excerpt=body[:200].decode("utf-8", "replace"),
        )
    return value


# json.loads without its wrapper: the C scanner, then what json.loads checks after it (only
# JSON whitespace may follow). Anything the scanner does not take goes to json.loads, which
# raises the error it always raised.
_scan: Callable[[str, int], tuple[Any, int]]
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, unstubbed


def load_json(text: str | bytes) -> Any:
    """``json.loads(text)``: the one JSON reader of every wire format, for answers, error
    bodies and stream events alike.

    JSON nested deeper than the interpreter's recursion limit (``[[[[...]]]]``) makes
    ``json.loads`` raise ``RecursionError``, which no parser's ``except ValueError`` would catch;
    here it is a ``ValueError`` like any other JSON that cannot be read, so a vendor's answer
    nested too deep is malformed, not a crash. Text is read by the C scanner directly (a stream
    reads one event per chunk, and json.loads's wrapper costs as much as a small chunk's scan).
    """
    try:
        if type(text) is not str:
            return json.loads(text)
        try:
            value, end = _scan(text, 0)
        except (StopIteration, ValueError):
            return json.loads(text)
        if end != len(text) and text[end:].strip(" \t\n\r"):  # JSON's whitespace only
            return json.loads(text)
        return value
    except RecursionError:
        raise ValueError("JSON nested too deeply to read (past Python's recursion limit)") from None


def decode_json(body: bytes, target: Target, *, what: str = "response") -> Any:
    """``body`` as JSON, or a ``ResponseFormatError`` saying which deployment sent garbage."""
    try:
        return load_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        excerpt = body[:200].decode("utf-8", "replace")
        raise ResponseFormatError(
            f"{target.deployment}: the {what} from {target.provider} is not valid JSON "
            f"({exc}); {len(body)} bytes received. The body may be truncated or the base_url "
            "may point at something that is not this vendor's API.",
            deployment=target.deployment,
            excerpt=excerpt,
        ) from None


def first_header(headers: httpx.Headers, *names: str) -> str | None:
    """The value of the first of ``names`` present in ``headers``."""
    for name in names:
        value: str | None = headers.get(name)
        if value:
            return value
    return None


def retry_after_seconds(headers: httpx.Headers, *, now: float) -> float | None:
    """The wait a response asks for, in seconds, or None.

    ``retry-after-ms`` (OpenAI, Anthropic) is the most precise and wins; ``Retry-After`` may be
    delta-seconds or an HTTP-date (RFC 9110 §10.2.3), resolved against ``now`` (Unix time).
    What comes back is the vendor's wait as sent, and always a finite number >= 0: a value that
    is not one (``inf``, ``nan``, a negative number, a date no calendar holds, garbage) is
    ignored rather than guessed at, and leaves the other header to speak. How much of a long
    wait to honour is not the parser's call but the guards' (``[defaults] max_retry_after_s``).
    """
    waits = wait_seconds(headers.get("retry-after-ms"), unit_s=1e-3)
    if waits is not None:
        return waits
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = wait_seconds(raw, unit_s=1.0)
    return seconds if seconds is not None else _seconds_until(raw.strip(), now)


def wait_seconds(text: str | None, *, unit_s: float) -> float | None:
    """``text`` as a finite, non-negative number of ``unit_s`` seconds, in seconds, or None:
    every wait a vendor asks for (a header, Gemini's ``retryDelay``) is read through here."""
    if text is None:
        return None
    try:
        value = float(text) * unit_s
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _seconds_until(date: str, now: float) -> float | None:
    """Seconds from ``now`` to the HTTP-date ``date`` (0 once it has passed), or None."""
    try:
        when = email.utils.parsedate_to_datetime(date)
        if when.tzinfo is None:  # "-0000": an HTTP-date is always GMT, never local time
            when = when.replace(tzinfo=timezone.utc)
        at = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None  # not a date, or one no datetime can hold (year 0, day 32, ...)
    wait = at - now
    return max(0.0, wait) if math.isfinite(wait) else None
