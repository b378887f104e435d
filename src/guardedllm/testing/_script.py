"""Scripted behaviours: what the fake does to the requests a rule matches.

A ``Behaviour`` is a frozen value; ``FakeProvider.script`` wraps one in a ``ScriptRule`` with a
matcher (model, vendor, endpoint) and a use count. Rules live in a ``RuleBook``.

Rule order is FIFO: a request takes the OLDEST rule that matches it and still has uses left,
so ``script(times=1, status=500)`` then ``script(times=1, status=429)`` answers 500 then 429
then the default reply. A rule with ``times=None`` never runs out and so shadows every rule
queued after it for the requests it matches; ``cancel()`` removes it.

The server thread takes rules while the test's thread adds and cancels them: every read and
write of a rule's counters happens under the book's one lock, and the lock is never held
across an ``await``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from guardedllm.errors import ArgumentError

__all__ = [
    "Behaviour",
    "Endpoint",
    "RuleBook",
    "ScriptRule",
    "ScriptedToolCall",
    "ScriptedUsage",
    "Vendor",
]

Vendor = Literal["openai", "azure", "anthropic", "gemini"]
Endpoint = Literal["chat", "count_tokens", "embeddings"]
VENDORS: tuple[Vendor, ...] = ("openai", "azure", "anthropic", "gemini")
ENDPOINTS: tuple[Endpoint, ...] = ("chat", "count_tokens", "embeddings")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ArgumentError(
            f"{attribute.name}={value!r} is negative; give a number of seconds (or bytes) >= 0."
        )


@attrs.frozen(kw_only=True)
class ScriptedToolCall:
    """One tool call the fake answers with: a function name and its JSON arguments."""

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    arguments: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def coerce(cls, value: ScriptedToolCall | Mapping[str, Any]) -> ScriptedToolCall:
        """Accept ``{"name": ..., "arguments": {...}}`` as well as an instance."""
        if isinstance(value, ScriptedToolCall):
            return value
        unknown = set(value) - {"name", "arguments"}
        if "name" not in value or unknown:
            raise ArgumentError(
                f"a scripted tool call is {{'name': str, 'arguments': dict}}, got {dict(value)!r};"
                " fix the keys."
            )
        return cls(name=value["name"], arguments=dict(value.get("arguments") or {}))


@attrs.frozen(kw_only=True)
class ScriptedUsage:
    """Token counts the fake reports instead of its own approximation (None keeps it)."""

    prompt_tokens: int | None = attrs.field(default=None, validator=_non_negative)
    completion_tokens: int | None = attrs.field(default=None, validator=_non_negative)
    cached_tokens: int | None = attrs.field(default=None, validator=_non_negative)

    @classmethod
    def coerce(cls, value: ScriptedUsage | Mapping[str, int] | None) -> ScriptedUsage | None:
        if value is None or isinstance(value, ScriptedUsage):
            return value
        unknown = set(value) - {"prompt_tokens", "completion_tokens", "cached_tokens"}
        if unknown:
            raise ArgumentError(
                f"usage keys {sorted(unknown)} are unknown; use prompt_tokens, "
                "completion_tokens and cached_tokens."
            )
        return cls(**value)


def _headers(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


def _usage(value: ScriptedUsage | Mapping[str, int] | None) -> ScriptedUsage | None:
    return ScriptedUsage.coerce(value)


def _tool_calls(
    value: Iterable[ScriptedToolCall | Mapping[str, Any]] | None,
) -> tuple[ScriptedToolCall, ...] | None:
    if value is None:
        return None
    return tuple(ScriptedToolCall.coerce(v) for v in value)


def _check_status(_: object, __: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 200 <= value <= 599:
        raise ArgumentError(f"status={value} is not an HTTP answer status; give 200..599.")


def _check_positive(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ArgumentError(f"{attribute.name}={value} must be at least 1.")


@attrs.frozen(kw_only=True)
class Behaviour:
    """What to do with one request. The default value answers normally.

    Stream-only fields (``cut_after_chunks``, ``malformed_chunk``, ``chunk_delay``, ``chunks``)
    do nothing to non-streaming requests, so one rule can cover both kinds. A "chunk" is one
    piece of content (thinking, text or tool-call arguments); the vendor's opening events go
    out with the first piece and its closing events after the last.
    """

    status: int | None = attrs.field(default=None, validator=_check_status)
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | str | None = None  # a str is sent verbatim (an HTTP-date, garbage)
    retry_after_ms: float | None = attrs.field(default=None, validator=_non_negative)
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers)
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    hang: bool = False
    drop: bool = False
    cut_after_chunks: int | None = attrs.field(default=None, validator=_non_negative)
    malformed_chunk: bool = False
    first_chunk_delay: float = attrs.field(default=0.0, validator=_non_negative)
    chunk_delay: float = attrs.field(default=0.0, validator=_non_negative)
    chunks: int | None = attrs.field(default=None, validator=_check_positive)
    content: str | None = None
    # The thinking text of a request that asks for thinking (Anthropic ``thinking`` enabled,
    # Gemini ``thinkingConfig.includeThoughts``); None: the default thoughts.
    reasoning: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] | None = attrs.field(
        default=None, converter=_tool_calls
    )
    finish_reason: str | None = None
    usage: ScriptedUsage | None = attrs.field(default=None, converter=_usage)
    not_found: bool = False
    body: bytes | None = None
    oversized: int | None = attrs.field(default=None, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        exclusive = [
            name
            for name in ("hang", "drop", "not_found", "body", "oversized")
            if getattr(self, name) not in (None, False)
        ]
        if len(exclusive) > 1:
            raise ArgumentError(
                f"{' and '.join(exclusive)} each decide the whole answer; script one of them "
                "per rule (queue two rules for two requests)."
            )
        if exclusive and exclusive[0] in ("hang", "drop", "not_found") and self.status:
            raise ArgumentError(f"{exclusive[0]}=True ignores status={self.status}; drop one.")


@attrs.frozen(kw_only=True)
class _Matcher:
    model: str | None
    vendor: Vendor | None
    endpoint: Endpoint | None

    def matches(self, vendor: str | None, model: str | None, endpoint: str | None) -> bool:
        return (
            (self.model is None or self.model == model)
            and (self.vendor is None or self.vendor == vendor)
            and (self.endpoint is None or self.endpoint == endpoint)
        )


class ScriptRule:
    """A queued rule. ``hits`` counts the requests it has answered; ``cancel()`` retires it."""

    __slots__ = ("_book", "_cancelled", "_hits", "_matcher", "behaviour", "times")

    def __init__(
        self, *, book: RuleBook, matcher: _Matcher, behaviour: Behaviour, times: int | None
    ) -> None:
        self._book = book
        self._matcher = matcher
        self.behaviour = behaviour
        self.times = times
        self._hits = 0
        self._cancelled = False

    @property
    def hits(self) -> int:
        with self._book.lock:
            return self._hits

    @property
    def remaining(self) -> int | None:
        """Uses left (None: unlimited). 0 once used up or cancelled."""
        with self._book.lock:
            return self._remaining()

    @property
    def active(self) -> bool:
        return self.remaining != 0

    def cancel(self) -> None:
        """Stop matching requests. Idempotent; ``hits`` keeps its count."""
        with self._book.lock:
            self._cancelled = True
            self._book.discard(self)

    def _remaining(self) -> int | None:
        if self._cancelled:
            return 0
        return None if self.times is None else max(0, self.times - self._hits)

    def __repr__(self) -> str:
        m = self._matcher
        return (
            f"ScriptRule(model={m.model!r}, vendor={m.vendor!r}, endpoint={m.endpoint!r}, "
            f"times={self.times!r}, hits={self.hits}, behaviour={self.behaviour!r})"
        )


class RuleBook:
    """The queue of rules, FIFO. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rules: list[ScriptRule] = []

    def add(
        self,
        behaviour: Behaviour,
        *,
        model: str | None = None,
        vendor: Vendor | None = None,
        endpoint: Endpoint | None = None,
        times: int | None = None,
    ) -> ScriptRule:
        if vendor is not None and vendor not in VENDORS:
            raise ArgumentError(f"vendor={vendor!r} is unknown; use one of {', '.join(VENDORS)}.")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ArgumentError(
                f"endpoint={endpoint!r} is unknown; use one of {', '.join(ENDPOINTS)}."
            )
        if times is not None and times < 1:
            raise ArgumentError(
                f"times={times} matches nothing; give at least 1, or None (forever)."
            )
        matcher = _Matcher(model=model, vendor=vendor, endpoint=endpoint)
        rule = ScriptRule(book=self, matcher=matcher, behaviour=behaviour, times=times)
        with self.lock:
            self._rules.append(rule)
        return rule

    def take(self, vendor: str | None, model: str | None, endpoint: str | None) -> Behaviour:
        """The behaviour for one request, using up one use of the rule that supplies it."""
        with self.lock:
            for rule in self._rules:
                if rule._matcher.matches(vendor, model, endpoint):
                    rule._hits += 1
                    if rule._remaining() == 0:
                        self._rules.remove(rule)
                    return rule.behaviour
        return DEFAULT_BEHAVIOUR

    def discard(self, rule: ScriptRule) -> None:
        with self.lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self.lock:
            for rule in self._rules:
                rule._cancelled = True
            self._rules.clear()

    def __len__(self) -> int:
        with self.lock:
            return len(self._rules)


DEFAULT_BEHAVIOUR = Behaviour()
