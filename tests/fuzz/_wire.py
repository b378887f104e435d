"""Hostile answers in every vendor's wire format, as hypothesis strategies.

Every answer starts from what a vendor really sends: ``FakeProvider``'s own reply builders
(``guardedllm.testing``) render a valid body, error body or event stream for a drawn reply
(text, tool calls, usage, finish reason). Then the strategies break it the way a hostile or
broken upstream does:

- structurally, in the JSON: a value replaced by a hostile one (a huge, negative or
  non-finite number, a string where an object belongs, NaN and Infinity literals, JSON nested
  thousands deep), a key dropped, a node wrapped, a token count made absurd;
- in the events of a stream: one mutated, dropped, repeated or swapped, a hostile event
  inserted (an error event, garbage, a vendor's key echoed), the terminal event cut off;
- in the bytes: truncated, invalid UTF-8 inserted, a byte-order mark, CR / CRLF / lone CR
  line ends, blank lines removed, comment lines and very long lines added.

``Target`` values for each vendor carry keys that no secret pattern recognises, so a test can
tell whether a key that comes back in an answer is kept out of errors.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal

import attrs
from hypothesis import strategies as st

from guardedllm.providers.base import Target
from guardedllm.testing import Behaviour, ScriptedToolCall, ScriptedUsage
from guardedllm.testing._replies import Exchange, Failure, compose_reply
from guardedllm.testing._responder import FORMATS

__all__ = [
    "DEPLOYMENTS",
    "KEYS",
    "KINDS",
    "RETRY_AFTERS",
    "TARGETS",
    "VENDORS",
    "Deep",
    "Vendor",
    "corrupted",
    "error_bodies",
    "error_headers",
    "feeds",
    "hostile_json",
    "mutated",
    "render",
    "response_bodies",
    "sse_framing",
    "stream_bodies",
    "stream_events",
]

Vendor = Literal["openai", "azure", "anthropic", "gemini"]
VENDORS: tuple[Vendor, ...] = ("openai", "azure", "anthropic", "gemini")
KINDS: dict[Vendor, str] = {
    "openai": "openai",
    "azure": "azure-openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
}
DEPLOYMENTS: dict[Vendor, str] = {vendor: f"fuzz-{vendor}" for vendor in VENDORS}
# No shape ``errors.scrub_secrets`` knows (sk-..., AIza..., bearer ...): only the redaction of
# the attempt's own key can keep these out of an error.
KEYS: dict[Vendor, str] = {
    "openai": "oaKEY.fuzz.5f1c9e27d04b",
    "azure": "azKEY.fuzz.0b8e3a6c19f2",
    "anthropic": "anKEY.fuzz.c47d2e91a05b",
    "gemini": "gmKEY.fuzz.9e0f31b7c6a8",
}
TARGETS: dict[Vendor, Target] = {
    vendor: Target(
        deployment=DEPLOYMENTS[vendor],
        provider=vendor,
        kind=KINDS[vendor],
        base_url="http://127.0.0.1:9/v1",
        model=f"fuzz-model-{vendor}",
        api_key=KEYS[vendor],
        api_version="2024-10-21" if vendor == "azure" else None,
        max_output_tokens=4096,
    )
    for vendor in VENDORS
}

# --------------------------------------------------------------------------- hostile JSON

# Counts no vendor sends: negative, past 32 and 64 bits, past a float's range.
ABSURD_INTS = (-1, -1_000_000, 2**31, 2**53 + 1, 2**63, 10**18, 10**400)
ODD_STRINGS = (
    "",
    "\x00",
    "[DONE]",
    "data: {}",
    "\r\n\r\n",
    "message_stop",
    "STOP",
    "error",
    "function",
    "tool_calls",
    "NaN",
    "\ufeff",
    "\u2028",
    "x" * 300,
)
# Field names the readers look at, so that hostile objects reach their code paths.
FIELD_NAMES = (
    "id",
    "model",
    "created",
    "choices",
    "index",
    "message",
    "delta",
    "content",
    "role",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "type",
    "text",
    "input",
    "candidates",
    "parts",
    "functionCall",
    "usageMetadata",
    "status",
    "code",
)
# Names of token counts in the four formats: a mutation aims at them often, since an absurd
# count is the commonest way a proxy or a buggy server breaks the bookkeeping after the call.
COUNT_FIELDS = frozenset(
    {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "thinking_tokens",
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "cachedContentTokenCount",
        "totalTokenCount",
    }
)
DEPTHS = (64, 999, 3_000, 100_000)


@attrs.frozen
class Deep:
    """JSON nested ``depth`` levels deep (arrays, or objects with one key), written out as
    text by ``render``: ``json.dumps`` itself cannot write it."""

    depth: int
    opener: Literal["[", "{"] = "["

    def text(self) -> str:
        if self.opener == "[":
            return "[" * self.depth + "]" * self.depth
        return '{"a":' * self.depth + "1" + "}" * self.depth


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(ABSURD_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(ODD_STRINGS),
)
# What a broken server reports as a token count: mostly absurd, sometimes any number.
absurd_counts = (
    st.sampled_from(ABSURD_INTS) | st.integers(max_value=-1) | st.integers(min_value=2**63)
)
json_keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
deep = st.builds(Deep, st.sampled_from(DEPTHS), st.sampled_from(["[", "{"]))


def hostile_json(*, max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Any JSON value, with absurd numbers, NaN and Infinity, odd strings, the readers' own
    field names as keys, and (now and then) nesting thousands of levels deep."""
    return st.recursive(
        st.one_of(json_scalars, deep),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(json_keys, inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def render(value: Any) -> bytes:
    """``value`` as JSON text (NaN and Infinity as the literals some servers send; ``Deep``
    written out)."""
    deeps: list[Deep] = []

    def swap(item: Any) -> Any:
        if isinstance(item, Deep):
            deeps.append(item)
            return f"\x00deep{len(deeps) - 1}\x00"
        if isinstance(item, dict):
            return {key: swap(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [swap(inner) for inner in item]
        return item

    text = json.dumps(swap(value), separators=(",", ":"))
    for index, nested in enumerate(deeps):
        text = text.replace(json.dumps(f"\x00deep{index}\x00"), nested.text())
    return text.encode()


# --------------------------------------------------------------------------- valid answers

_finish = st.sampled_from([None, "stop", "length", "tool_calls", "content_filter", "weird"])
_tool_calls = st.lists(
    st.builds(
        ScriptedToolCall,
        name=st.sampled_from(["lookup", "json_response", "f"]),
        arguments=st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
    ),
    max_size=2,
)
_usage = st.builds(
    ScriptedUsage,
    prompt_tokens=st.integers(0, 5000),
    completion_tokens=st.integers(0, 5000),
    cached_tokens=st.integers(0, 5000),
)


@st.composite
def _reply(draw: st.DrawFn, vendor: Vendor, *, stream: bool) -> tuple[Exchange, Any]:
    tool_calls = draw(_tool_calls)
    behaviour = Behaviour(
        content=draw(st.none() | st.text(max_size=40)),
        tool_calls=tool_calls or None,
        finish_reason=draw(_finish),
        usage=draw(st.none() | _usage),
        chunks=draw(st.none() | st.integers(1, 6)),
    )
    exchange = Exchange(
        vendor=vendor,
        endpoint="chat",
        model=TARGETS[vendor].model,
        stream=stream,
        include_usage=True,
        max_tokens=draw(st.none() | st.integers(1, 64)),
        has_tools=bool(tool_calls),
        last_user_text=draw(st.text(max_size=20)),
        prompt_tokens=draw(st.integers(0, 100)),
    )
    return exchange, compose_reply(exchange, behaviour)


# --------------------------------------------------------------------------- mutations


def _slots(tree: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) in ``tree``: the places a mutation can touch."""
    stack = [tree]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            yield node, key
            if isinstance(child, (dict, list)):
                stack.append(child)


# The operations of ``mutated``, the ones that reach the known failure classes (counts, deep
# nesting) listed more than once so that a modest number of examples reaches them.
_OPERATIONS = ("count", "count", "deep", "deep", "replace", "replace", "delete", "wrap", "root")


@st.composite
def mutated(
    draw: st.DrawFn,
    tree: Any,
    *,
    max_mutations: int = 3,
    operations: tuple[str, ...] = _OPERATIONS,
) -> Any:
    """``tree`` (a parsed valid answer) with one to ``max_mutations`` structural changes."""
    tree = copy.deepcopy(tree)
    for _ in range(draw(st.integers(1, max_mutations))):
        slots = list(_slots(tree)) if isinstance(tree, (dict, list)) else []
        if not slots:
            return draw(hostile_json())
        counts = [(node, key) for node, key in slots if key in COUNT_FIELDS]
        operation = draw(st.sampled_from(operations))
        if operation == "count" and counts:
            node, key = draw(st.sampled_from(counts))
            node[key] = draw(absurd_counts | json_scalars)
            continue
        if operation == "root":
            return draw(st.sampled_from([[tree], {"data": tree}, None, "ok", 0]))
        node, key = draw(st.sampled_from(slots))
        if operation == "delete":
            node.pop(key)
        elif operation == "wrap":
            node[key] = draw(st.sampled_from([[node[key]], {"value": node[key]}]))
        elif operation == "deep":
            node[key] = draw(deep)
        else:
            node[key] = draw(hostile_json())
    return tree


_INVALID_UTF8 = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82")


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` as sent, or with one byte-level fault: cut short, invalid UTF-8 or a NUL
    spliced in, a byte replaced, a byte-order mark in front."""
    fault = draw(st.sampled_from(["none", "none", "none", "truncate", "splice", "replace", "bom"]))
    if fault == "none" or not data:
        return data
    at = draw(st.integers(0, len(data) - 1))
    if fault == "truncate":
        return data[:at]
    if fault == "splice":
        return data[:at] + draw(st.sampled_from([*_INVALID_UTF8, b"\x00"])) + data[at:]
    if fault == "replace":
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return b"\xef\xbb\xbf" + data


# --------------------------------------------------------------------------- bodies


@st.composite
def response_bodies(draw: st.DrawFn, vendor: Vendor) -> bytes:
    """A 2xx non-streaming body for ``vendor``: valid, mutated, or not an answer at all."""
    source = draw(st.sampled_from(["valid", "mutated", "mutated", "hostile", "error"]))
    if source == "hostile":
        return draw(corrupted(render(draw(hostile_json()))))
    if source == "error":  # an error body with status 200, the key echoed in it
        return draw(corrupted(render(_error_payload(vendor, 500, f"bad key {KEYS[vendor]}"))))
    exchange, reply = draw(_reply(vendor, stream=False))
    tree = FORMATS[vendor].completion(exchange, reply, 1)
    if source == "mutated":
        tree = draw(mutated(tree))
    return draw(corrupted(render(tree)))


def _error_payload(
    vendor: Vendor, status: int, message: str | None, code: str | None = None
) -> Any:
    failure = Failure(kind="status", status=status, message=message, code=code)
    return FORMATS[vendor].error(failure)[1]


ERROR_STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529)


@st.composite
def error_bodies(draw: st.DrawFn, vendor: Vendor) -> tuple[int, bytes]:
    """A non-2xx status and its body: the vendor's error (mutated, wrapped in a list as
    Gemini's stream endpoint does, with the key echoed), a proxy's HTML page, or garbage."""
    status = draw(st.sampled_from(ERROR_STATUSES) | st.integers(300, 599))
    source = draw(st.sampled_from(["vendor", "vendor", "html", "hostile"]))
    if source == "html":
        body = b"<html><body><h1>502 Bad Gateway</h1>" + KEYS[vendor].encode() + b"</body></html>"
    elif source == "hostile":
        body = render(draw(hostile_json()))
    else:
        message = draw(st.sampled_from([None, "", f"key {KEYS[vendor]} is invalid", "x" * 600]))
        code = draw(st.none() | st.sampled_from(["model_not_found", "overloaded", "429"]))
        tree = draw(mutated(_error_payload(vendor, status, message, code)))
        if draw(st.booleans()) and vendor == "gemini":
            tree = [tree]
        body = render(tree)
    return status, draw(corrupted(body))


# Retry-After values a hostile or broken server sends: huge, infinite, far-future dates,
# negative, not numbers at all.
RETRY_AFTERS = (
    "0",
    "1",
    "0.01",
    "999999",
    "inf",
    "Infinity",
    "-1",
    "nan",
    "1e309",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "soon",
    "",
)


@st.composite
def error_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Response headers for an error answer, as raw bytes (any byte a server may send in a
    header value, without line ends)."""
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.booleans()):
        headers.append((b"retry-after", draw(st.sampled_from(RETRY_AFTERS)).encode()))
    if draw(st.booleans()):
        ms = draw(st.sampled_from(["1500", "1e400", "-5", "nan", "x"]))
        headers.append((b"retry-after-ms", ms.encode()))
    if draw(st.booleans()):
        value = draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b"")
        headers.append((draw(st.sampled_from([b"x-request-id", b"request-id"])), value))
    return headers


# --------------------------------------------------------------------------- streams


_COUNTS = re.compile(b"|".join(re.escape(name.encode()) for name in sorted(COUNT_FIELDS)))


def _split_events(data: bytes) -> list[bytes]:
    return [event + b"\n\n" for event in data.split(b"\n\n") if event]


def _mutate_event(event: bytes, mutation: Callable[[Any], Any]) -> bytes:
    """``event`` with the JSON of its data line replaced by ``mutation(parsed)``."""
    lines = event.rstrip(b"\n").split(b"\n")
    for index, line in enumerate(lines):
        if line.startswith(b"data: "):
            try:
                lines[index] = b"data: " + render(mutation(json.loads(line[6:])))
            except (ValueError, RecursionError):  # broken or nested deep before: leave it be
                return event
    return b"\n".join(lines) + b"\n\n"


@st.composite
def _hostile_event(draw: st.DrawFn, vendor: Vendor) -> bytes:
    kind = draw(st.sampled_from(["garbage", "json", "error", "named", "done", "comment"]))
    if kind == "garbage":
        return b"data: " + draw(st.binary(max_size=30)).replace(b"\n", b"") + b"\n\n"
    if kind == "json":
        return b"data: " + render(draw(hostile_json())) + b"\n\n"
    if kind == "error":  # a vendor error event mid-stream, echoing the key
        payload = _error_payload(vendor, draw(st.sampled_from(ERROR_STATUSES)), KEYS[vendor])
        name = b"event: error\n" if draw(st.booleans()) else b""
        return name + b"data: " + render(payload) + b"\n\n"
    if kind == "named":
        return b"event: " + draw(st.sampled_from([b"ping", b"x", b"message_stop", b""])) + b"\n"
    if kind == "done":
        return b"data: [DONE]\n\n"
    return b": keep-alive\n\n"


# Mutating an event's JSON reaches the most reader code: it is drawn most often.
_EVENT_FAULTS = (
    "mutate",
    "mutate",
    "mutate",
    "count",
    "count",
    "drop",
    "repeat",
    "swap",
    "insert",
    "insert",
    "cut",
)


@st.composite
def stream_events(draw: st.DrawFn, vendor: Vendor) -> list[bytes]:
    """The events of a streamed answer, each framed, after event-level faults."""
    exchange, reply = draw(_reply(vendor, stream=True))
    events = [event.data for event in FORMATS[vendor].stream(exchange, reply, 1)]
    events = [framed for data in events for framed in _split_events(data)]
    for _ in range(draw(st.integers(1, 3))):
        fault = draw(st.sampled_from(_EVENT_FAULTS))
        at = draw(st.integers(0, max(0, len(events) - 1)))
        if fault == "insert" or not events:
            events.insert(at, draw(_hostile_event(vendor)))
        elif fault == "mutate":
            events[at] = _mutate_event(events[at], lambda tree: draw(mutated(tree)))
        elif fault == "count":  # an absurd count in an event that reports usage
            counting = [i for i, event in enumerate(events) if _COUNTS.search(event)]
            if counting:
                at = draw(st.sampled_from(counting))
                count = lambda tree: draw(mutated(tree, max_mutations=1, operations=("count",)))  # noqa: E731
                events[at] = _mutate_event(events[at], count)
        elif fault == "drop":
            events.pop(at)
        elif fault == "repeat":
            events.insert(at, events[at])
        elif fault == "swap":
            other = draw(st.integers(0, len(events) - 1))
            events[at], events[other] = events[other], events[at]
        else:  # the terminal events never come
            events = events[:at]
    return events


@st.composite
def sse_framing(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` (well-framed SSE) with its framing made hostile: other line ends, blank
    lines missing or doubled, comments, a long line, a byte-order mark, a byte-level fault."""
    ending = draw(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r", b"mixed"]))
    if ending == b"mixed":
        data = data.replace(b"\n\n", b"\r\n\r")
    elif ending != b"\n":
        data = data.replace(b"\n", ending)
    fault = draw(st.sampled_from(["none", "blank", "double", "comment", "long", "bom"]))
    if fault == "blank":
        data = data.replace(b"\n\n", b"\n", 1)
    elif fault == "double":
        data = data.replace(b"\n\n", b"\n\n\n\n")
    elif fault == "comment":
        data = b": " + draw(st.binary(max_size=20)).replace(b"\n", b"") + b"\n" + data
    elif fault == "long":
        data = b"data: " + b"x" * draw(st.sampled_from([1000, 70_000])) + b"\n" + data
    elif fault == "bom":
        data = b"\xef\xbb\xbf" + data
    return draw(corrupted(data))


@st.composite
def stream_bodies(draw: st.DrawFn, vendor: Vendor) -> bytes:
    """A streamed 2xx body for ``vendor``, faults and framing included."""
    return draw(sse_framing(b"".join(draw(stream_events(vendor)))))


@st.composite
def feeds(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut into the reads a network might deliver: whole, at random points, or one
    byte at a time."""
    how = draw(st.sampled_from(["whole", "cuts", "cuts", "bytes"]))
    if how == "whole" or not data:
        return [data]
    if how == "bytes" and len(data) <= 4000:
        return [data[i : i + 1] for i in range(len(data))]
    cuts: set[int] = set()
    if len(data) > 1:
        cuts = draw(st.sets(st.integers(1, len(data) - 1), max_size=12))
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]
