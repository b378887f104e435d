"""Every error guardedllm raises, in one tree.

    GuardedLLMError
    ├── ArgumentError                  a value passed to the API is wrong (a ValueError too)
    │   └── ArgumentTypeError          ... or of the wrong type (a TypeError too)
    ├── ConfigError                    the registry / config file is invalid (lists every problem)
    ├── InvalidRequestError            the caller's arguments cannot be sent (bad messages, ...)
    │   ├── NoRouteError               no deployment of the route can serve the call (each
    │   │                              excluded deployment with the constraint that excluded it)
    │   ├── MaxTokensExceededError     max_tokens is above the deployment's max output
    │   ├── InexactEstimateError       the policy refuses an estimate that is not exact
    │   ├── ModelKindError             a chat call to an embedding model, or the reverse
    │   ├── EmbeddingBatchError        an embeddings batch is over the model's item or
    │   │                              token limits (split it)
    │   └── ThinkingBudgetError        Anthropic thinking.budget_tokens is not below max_tokens
    ├── ContextWindowExceededError     the request does not fit the model, refused before sending
    │   └── ContextLengthExceededError  ... or the vendor said so (a 400: a BadRequestError too)
    ├── BudgetExceededError            the worst-case cost is over a cap, refused before sending
    ├── CircuitOpenError               the deployment's breaker is open; nothing was sent
    ├── DeadlineExceededError          the call's one deadline ran out (attempts attached)
    ├── ClientClosedError              the client (or your http_client) is closed; nothing sent
    │                                  (a RuntimeError too, as httpx's closed-client error is)
    ├── TransportError                 no HTTP answer: connect failure, timeout, dropped connection
    │   ├── ConnectError
    │   ├── TimeoutError
    │   └── ConnectionDroppedError
    ├── ResponseFormatError            the vendor answered with something we cannot parse
    ├── StructuredOutputError          an answer does not match the JSON schema it was asked for
    ├── StateError                     the shared state store (Redis) failed: refused, timed
    │                                  out, denied
    ├── StreamInterruptedError         a stream broke after chunks reached the caller
    ├── MissingExtraError              a feature needs an optional extra that is not installed
    │                                  (an ImportError too)
    ├── ProviderError                  the vendor answered with an error status
    │   ├── BadRequestError            400, 422
    │   ├── AuthenticationError        401
    │   ├── PermissionDeniedError      403
    │   ├── NotFoundError              404
    │   │   └── ModelNotFoundError     unknown alias locally, or the vendor's 404 model-not-found
    │   ├── RequestTimeoutError        408
    │   ├── ConflictError              409
    │   ├── RequestTooLargeError       413
    │   ├── RateLimitedError           429, or a local limit whose wait is too long
    │   └── ServerError                5xx
    │       └── OverloadedError        529, or a vendor "overloaded" error
    ├── AllRoutesFailedError           every deployment in the plan failed (attempts attached)
    └── TrafficError                   simulate/compare cannot use their input: a traffic file
                                       unreadable or from a newer guardedllm, no requests, an
                                       unknown deployment or arm

Rules: the vendor status maps to a class through ``STATUS_ERRORS`` (a table, not an if-chain);
every message says what happened and what to do next; errors about attempts carry the attempts;
no message, repr or attribute ever holds an API key (bodies are excerpted and scrubbed; every
error born of a vendor's answer has the attempt's own key masked, see ``redact``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import attrs

from guardedllm._secrets import masked, scrub_secrets

if TYPE_CHECKING:
    from guardedllm.types import Attempt, ChatCompletionChunk

__all__ = [
    "STATUS_ERRORS",
    "AllRoutesFailedError",
    "ArgumentError",
    "ArgumentTypeError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ClientClosedError",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "ConnectError",
    "ConnectionDroppedError",
    "ContextLengthExceededError",
    "ContextWindowExceededError",
    "DeadlineExceededError",
    "EmbeddingBatchError",
    "GuardedLLMError",
    "InexactEstimateError",
    "InvalidRequestError",
    "MaxTokensExceededError",
    "MissingExtraError",
    "ModelKindError",
    "ModelNotFoundError",
    "NoRouteError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitedError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ResponseFormatError",
    "ServerError",
    "StateError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "ThinkingBudgetError",
    "TimeoutError",
    "TrafficError",
    "TransportError",
    "error_for_status",
    "redact",
    "scrub_secrets",
]

# Longest vendor body excerpt an error keeps: enough to read the vendor's message, short
# enough that a huge HTML error page does not flood logs.
BODY_EXCERPT_CHARS = 500

_E = TypeVar("_E", bound="GuardedLLMError")


def redact(error: _E, secret: str | None) -> _E:
    """``error`` with ``secret`` (the key the attempt was sent with) masked in its message and
    in every text it carries (a vendor body, an excerpt, a code), and so in the errors of ours
    it was raised from: a vendor may quote back a key of any shape, which ``scrub_secrets``
    cannot know. A part of the key cut off at the end of an excerpt is masked as well.

    An error raised ``from None`` in place of another (a ``JSONDecodeError``, whose ``doc`` is
    the whole body) also lets go of that one: hidden from tracebacks, it would still be
    reachable as ``__context__``, key and all."""
    if not secret or len(secret) < 4:
        return error
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, GuardedLLMError) or id(current) in seen:
            continue
        seen.add(id(current))
        current.args = tuple(masked(a, secret) if isinstance(a, str) else a for a in current.args)
        for name, value in list(vars(current).items()):
            if isinstance(value, str):
                setattr(current, name, masked(value, secret))
        if current.__suppress_context__ and not isinstance(current.__context__, GuardedLLMError):
            current.__context__ = None
        pending += (current.__cause__, current.__context__)
    return error


class GuardedLLMError(Exception):
    """Base of every error guardedllm raises.

    ``attempts`` is what the call tried before failing (empty for errors raised before any
    attempt, such as config errors); the engine fills it in on the way out.
    """

    attempts: tuple[Attempt, ...] = ()


class ArgumentError(GuardedLLMError, ValueError):
    """A value given to guardedllm's API (a constructor, a setting, a method's option) is
    wrong; the message names it and says what to pass. Also a ``ValueError``, which is what
    such code caught before it was a ``GuardedLLMError``."""


class ArgumentTypeError(ArgumentError, TypeError):
    """A value given to guardedllm's API is of the wrong type (a file path where a registry
    goes, a string where a number goes). Also a ``TypeError``."""


@attrs.frozen(kw_only=True)
class ConfigProblem:
    """One thing wrong with a config: where (a dotted key) and what."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(GuardedLLMError):
    """The config is invalid. ``problems`` lists every problem found, each with its key."""

    def __init__(self, problems: Sequence[ConfigProblem], *, source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{count} config {noun}{where}:\n{lines}\n"
            "Fix each key listed above; `guardedllm check CONFIG` re-runs this validation."
        )


class InvalidRequestError(GuardedLLMError):
    """The arguments to a call cannot make a valid request; nothing was sent."""


class NoRouteError(InvalidRequestError):
    """No deployment the route considered can serve this call; nothing was sent.

    ``excluded`` maps each deployment considered to the constraint that excluded it (a
    capability it lacks, the call's allowed deployments, a split arm not assigned, ...).
    """

    def __init__(self, message: str, *, excluded: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.excluded = dict(excluded)


class MaxTokensExceededError(InvalidRequestError):
    """The call's ``max_tokens`` is above the deployment's ``max_output_tokens``, which the
    vendor would refuse; nothing was sent to it. ``Policy(clamp_max_tokens=True)`` sends the
    deployment's limit instead."""

    def __init__(
        self, message: str, *, deployment: str, max_tokens: int, max_output_tokens: int
    ) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.max_tokens = max_tokens
        self.max_output_tokens = max_output_tokens


class ModelKindError(InvalidRequestError):
    """A chat call reached an embedding model, or an embeddings call a chat model; nothing
    was sent. ``deployment`` names it, ``kind`` is what it serves."""

    def __init__(self, message: str, *, deployment: str, kind: str) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.kind = kind


class EmbeddingBatchError(InvalidRequestError):
    """An embeddings call's inputs are over what the deployment takes in one request (too many
    items, an item over its token limit, too many tokens in all); nothing was sent to it.
    ``limit`` names the limit ("items", "item_tokens" or "batch_tokens"), ``index`` the input
    over it when it is one input's."""

    def __init__(
        self, message: str, *, deployment: str, limit: str, index: int | None = None
    ) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.limit = limit
        self.index = index


class InexactEstimateError(InvalidRequestError):
    """The policy refuses deployments whose estimate is not exact
    (``Policy(refuse_inexact=True)``), and this one's is not; nothing was sent to it."""

    def __init__(self, message: str, *, deployment: str) -> None:
        super().__init__(message)
        self.deployment = deployment


class ThinkingBudgetError(InvalidRequestError):
    """Anthropic extended thinking's ``thinking.budget_tokens`` is not below the call's
    ``max_tokens``, which Anthropic requires (thinking is counted within ``max_tokens``);
    nothing was sent to the deployment. Raise ``max_tokens`` or lower the budget."""


class ContextWindowExceededError(GuardedLLMError):
    """The request (input plus reserved output) does not fit the model's context window."""

    def __init__(self, message: str, *, input_tokens: int = 0, context_window: int = 0) -> None:
        super().__init__(message)
        self.input_tokens = input_tokens
        self.context_window = context_window


class BudgetExceededError(GuardedLLMError):
    """The call's worst-case cost is over a cap or spend budget; nothing was sent."""

    def __init__(self, message: str, *, cost_usd: float = 0.0, limit_usd: float = 0.0) -> None:
        super().__init__(message)
        self.cost_usd = cost_usd
        self.limit_usd = limit_usd


class CircuitOpenError(GuardedLLMError):
    """The deployment's circuit breaker is open; the call failed without touching the network.
    ``cause`` names what opened it ("failure_rate", "slow_call_rate", "probe_failed",
    "probes_slow"; None when not known), with the measured ``rate`` and its ``threshold`` where
    one was measured."""

    def __init__(
        self,
        message: str,
        *,
        deployment: str,
        retry_in_s: float | None = None,
        cause: str | None = None,
        rate: float | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.retry_in_s = retry_in_s
        self.cause = cause
        self.rate = rate
        self.threshold = threshold


class DeadlineExceededError(GuardedLLMError):
    """The call's deadline ran out; ``attempts`` says what was tried in the time."""

    def __init__(
        self, message: str, *, deadline_s: float, attempts: Sequence[Attempt] = ()
    ) -> None:
        super().__init__(message)
        self.deadline_s = deadline_s
        self.attempts = tuple(attempts)


class ClientClosedError(GuardedLLMError, RuntimeError):
    """The client was closed (or the ``http_client`` you gave it was), so nothing was sent.

    Also a ``RuntimeError``: that is what httpx raises for a closed client, and what a call on
    a closed client raised before this class existed, so an ``except RuntimeError`` written
    for either still catches it.
    """


class TransportError(GuardedLLMError):
    """No HTTP answer came back: the connection failed, timed out or was dropped."""

    def __init__(self, message: str, *, deployment: str | None = None) -> None:
        super().__init__(message)
        self.deployment = deployment


class ConnectError(TransportError):
    """Could not connect to the provider (refused, DNS, TLS)."""


class TimeoutError(TransportError):
    """The provider did not answer in time."""


class ConnectionDroppedError(TransportError):
    """The connection closed before a complete answer arrived."""


class ResponseFormatError(GuardedLLMError):
    """The provider's answer could not be parsed (malformed JSON, garbage SSE, truncated body)."""

    def __init__(self, message: str, *, deployment: str | None = None, excerpt: str = "") -> None:
        super().__init__(message)
        self.deployment = deployment
        self.excerpt = scrub_secrets(excerpt[:BODY_EXCERPT_CHARS])


class StructuredOutputError(GuardedLLMError):
    """The answer does not match the JSON schema its ``response_format`` asked for (or the
    pydantic model given to ``parse`` refused it), and the route did not escalate. The vendor
    answered and was billed: ``completion`` is that answer, ``problems`` what is wrong with it
    (each naming the choice and the place in the answer)."""

    def __init__(
        self, message: str, *, completion: object = None, problems: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.completion = completion
        self.problems = tuple(problems)


class StateError(GuardedLLMError):
    """The store holding the guards' shared state (Redis) failed: no connection, no answer in
    time, credentials refused, or an operation the server would not run. ``store`` names the
    store (address and key prefix, never a password)."""

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


class MissingExtraError(GuardedLLMError, ImportError):
    """A feature needs a library of an optional extra (``guardedllm[report]``) that is not
    installed. ``extra`` names the extra; ``name`` (as on any ``ImportError``) is the module
    that failed to import. Also an ``ImportError``, which is what a missing library raises, so
    an ``except ImportError`` written for that still catches it."""

    def __init__(self, feature: str, *, extra: str, name: str) -> None:
        super().__init__(
            f"{feature} needs {name}, which is not installed: pip install 'guardedllm[{extra}]'"
        )
        self.name = name
        self.extra = extra


class StreamInterruptedError(GuardedLLMError):
    """A stream broke after chunks had reached the caller; ``received`` holds them."""

    def __init__(
        self,
        message: str,
        *,
        received: Sequence[ChatCompletionChunk] = (),
        deployment: str | None = None,
    ) -> None:
        super().__init__(message)
        self.received = tuple(received)
        self.deployment = deployment

    @property
    def partial_content(self) -> str:
        """The text the stream delivered before it broke."""
        parts: list[str] = []
        for chunk in self.received:
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
        return "".join(parts)


class ProviderError(GuardedLLMError):
    """The provider answered with an error status.

    ``status`` is the HTTP status (None for a local decision with the same meaning),
    ``code`` the vendor's error code or type, ``request_id`` the vendor's request id
    (quote it to the vendor's support), ``retry_after`` the wait the vendor asked for, in seconds.
    """

    advice = "Check the request and the provider's status page."

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        deployment: str | None = None,
        body: str = "",
    ) -> None:
        super().__init__(scrub_secrets(message))
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.deployment = deployment
        self.body = scrub_secrets(body[:BODY_EXCERPT_CHARS])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r}, deployment={self.deployment!r})"
        )


class BadRequestError(ProviderError):
    advice = "The provider rejected the request as invalid; fix the arguments (not retried)."


class AuthenticationError(ProviderError):
    advice = "Check that the provider's api_key_env variable holds a valid key (not retried)."


class ContextLengthExceededError(BadRequestError, ContextWindowExceededError):
    """The vendor refused the prompt as longer than the model's context window (OpenAI's
    ``context_length_exceeded``, Anthropic's "prompt is too long", Gemini's "input token count
    exceeds the maximum"): the estimate let it through, the vendor counted more. A
    ``ContextWindowExceededError``, so routing moves on to a deployment with a larger window
    instead of failing the call, and a ``BadRequestError`` (the vendor's 400) for code that
    catches those. ``input_tokens`` and ``context_window`` are 0: the vendor's message has its
    figures. (Built as every ``ProviderError`` is; its ``__init__`` hands the message on to
    ``ContextWindowExceededError``'s, which sets those two.)"""

    advice = (
        "The prompt is longer than the model's window as the vendor counts it: shorten it, or "
        "route to a model with a larger context window."
    )


class PermissionDeniedError(ProviderError):
    advice = "The key lacks access to this model or resource; check the account (not retried)."


class NotFoundError(ProviderError):
    advice = "Check the provider's base_url and the deployment's model id (not retried)."


class ModelNotFoundError(NotFoundError):
    advice = (
        "The model id does not exist for this provider or environment; check the registry "
        "and run `guardedllm check` / `guardedllm smoke` (not retried)."
    )


class RequestTimeoutError(ProviderError):
    advice = "The provider timed out the request; it is retried while the deadline allows."


class ConflictError(ProviderError):
    advice = "The provider reported a conflict; it is retried while the deadline allows."


class RequestTooLargeError(ProviderError):
    advice = "Shorten the input or lower max_tokens (not retried)."


class RateLimitedError(ProviderError):
    advice = "Slow down, raise the limit with the provider, or allow a longer deadline."


class ServerError(ProviderError):
    advice = "The provider failed; it is retried or falls back while the deadline allows."


class OverloadedError(ServerError):
    advice = "The provider is overloaded; it is retried or falls back while the deadline allows."


class AllRoutesFailedError(GuardedLLMError):
    """Every deployment in the plan failed or was skipped; ``attempts`` tells each story."""

    def __init__(self, message: str, *, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last attempt, if any attempt failed with one."""
        return self.__cause__


STATUS_ERRORS: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: BadRequestError,
    429: RateLimitedError,
    529: OverloadedError,
}


def error_for_status(
    status: int,
    vendor_message: str,
    *,
    code: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    deployment: str | None = None,
    body: str = "",
    model_not_found: bool = False,
    overloaded: bool = False,
    bad_credentials: bool = False,
    context_length: bool = False,
) -> ProviderError:
    """Build the typed error for a vendor error status.

    ``model_not_found`` / ``overloaded`` / ``bad_credentials`` / ``context_length`` come from
    the wire format, which knows how its vendor says so (Gemini answers a bad key with 400
    API_KEY_INVALID); they refine the class the status alone would give.
    """
    cls: type[ProviderError]
    if bad_credentials:
        cls = AuthenticationError
    elif model_not_found:
        cls = ModelNotFoundError
    elif overloaded:
        cls = OverloadedError
    elif context_length:
        cls = ContextLengthExceededError
    else:
        cls = STATUS_ERRORS.get(status, ServerError if status >= 500 else ProviderError)
    who = f"{deployment}: " if deployment else ""
    rid = f" (request id {request_id})" if request_id else ""
    wait = f" Retry after {retry_after:g} s." if retry_after is not None else ""
    message = f"{who}provider answered {status}: {vendor_message}{rid}.{wait} {cls.advice}"
    return cls(
        message,
        status=status,
        code=code,
        request_id=request_id,
        retry_after=retry_after,
        deployment=deployment,
        body=body,
    )


class TrafficError(GuardedLLMError):
    """``guardedllm simulate`` or ``compare`` cannot use its input (a file it cannot read, a
    record format newer than this version, no requests, a deployment or arm the config or the
    records do not have). The command exits 2: nothing was measured."""
