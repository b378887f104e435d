"""Whole calls against a ``HostileServer``, through any driver, with every guard on and its
state read back after each call.

A ``Rig`` holds, for one test, the hostile server and (for asyncio and trio) an event loop
behind an anyio blocking portal. Each call gets a client of its own (``Rig.fresh``) over a
fresh ``MemoryBackend``, so what one hostile answer leaves in the guards cannot mask the next
one and hypothesis can replay a failing example alone. The client has a spend budget, rpm and
tpm limits on every deployment, and a breaker that a test may leave half-open so that the call
is a probe.

Time: the engine runs on a ``FrozenClock``, which moves only when the test advances it or the
engine sleeps (a sleep moves it on instead of waiting), so a rate-limit bucket reads back
exactly what a call left in it. What bounds a call in real time is each attempt's
``timeout_s`` (the drivers cap every attempt on the real clock) and the server's own limits
(``_hostile``).

What ``Rig.check_guards`` holds after every call, however it ended (answer, error, early
close, abandoned stream, cancellation):

- no spend reservation is held (``client.spend()``: ``reserved_usd == 0`` everywhere);
- no breaker probe slot is held: a half-open breaker admits a new probe;
- no rate-limit token is held by an attempt that got no answer: a call that ended before any
  answer leaves the tpm bucket where it found it, and one answered with usage takes exactly
  that usage from it (checked when the call slept for nothing: a sleep refills the bucket).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import anyio
import anyio.from_thread
import anyio.lowlevel
import attrs

from guardedllm import AsyncClient, Client, Registry
from guardedllm.errors import GuardedLLMError
from guardedllm.guards import BreakerConfig, CircuitBreaker, SpendBudget
from guardedllm.state import MemoryBackend
from guardedllm.types import ChatCompletion, ChatCompletionChunk

from ._hostile import HostileServer
from ._wire import DEPLOYMENTS, KEYS

__all__ = [
    "ENVIRON",
    "MAX_ATTEMPTS",
    "MAX_RESPONSE_BYTES",
    "TIMEOUT_S",
    "Called",
    "FrozenClock",
    "How",
    "Rig",
    "config_text",
    "errors_in",
    "open_rig",
]

How = Literal["read", "close_early", "abandon", "cancel"]

ENVIRON = {f"FUZZ_{vendor.upper()}_KEY": key for vendor, key in KEYS.items()}

# Limits far above anything a test spends, so a limit never refuses a call on its own; they
# are on so that every call takes and settles tokens and a reservation.
RPM = 1_000_000
TPM = 1_000_000_000
BUDGET = SpendBudget(scope="global", window="day", limit_usd=100_000.0, name="fuzz")
# Trips on one failure; half-open after one second of FrozenClock time, with one probe slot
# and one success to close, so that a probe slot a call failed to free is seen at once.
BREAKER = BreakerConfig(
    minimum_calls=1,
    failure_rate_threshold=1.0,
    open_s=1.0,
    max_open_s=1.0,
    backoff_multiplier=1.0,
    open_jitter=0.0,
    half_open_probes=1,
    half_open_successes=1,
    probe_timeout_s=1e9,  # a held slot never expires by itself: FrozenClock barely moves
)
# Each attempt is capped at this much real time, and a call makes at most two attempts.
TIMEOUT_S = 0.25
MAX_ATTEMPTS = 2
# The clients' body cap: small, so a test can send more than it without sending much.
MAX_RESPONSE_BYTES = 1024 * 1024

CONFIG = """
[defaults]
deadline_s = 30
max_attempts = {max_attempts}
timeout_s = {timeout_s}

[providers.openai]
kind = "openai"
base_url = "{url}/v1"
api_key_env = "FUZZ_OPENAI_KEY"

[providers.azure]
kind = "azure-openai"
base_url = "{url}"
api_key_env = "FUZZ_AZURE_KEY"
api_version = "2024-10-21"

[providers.anthropic]
kind = "anthropic"
base_url = "{url}"
api_key_env = "FUZZ_ANTHROPIC_KEY"

[providers.gemini]
kind = "gemini"
base_url = "{url}"
api_key_env = "FUZZ_GEMINI_KEY"
{models}
"""

MODEL = """
[models.{name}]
provider = "{vendor}"
model = "fuzz-model-{vendor}"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 4096
input_usd_per_mtok = 1.0
output_usd_per_mtok = 4.0
rpm = {rpm}
tpm = {tpm}
"""


def config_text(url: str) -> str:
    models = "".join(
        MODEL.format(name=name, vendor=vendor, rpm=RPM, tpm=TPM)
        for vendor, name in DEPLOYMENTS.items()
    )
    return CONFIG.format(url=url, models=models, max_attempts=MAX_ATTEMPTS, timeout_s=TIMEOUT_S)


class FrozenClock:
    """Engine time that moves only when the test advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@attrs.frozen(kw_only=True)
class Called:
    """What one call gave its caller: ``result`` (an answer, the chunks of a stream, or the
    guardedllm error it raised; None if cancelled before either), whether the caller had an
    answer or a stream in hand when it stopped (``answered``), its wall time, and the engine
    time it slept (``slept_s``: rate-limit waits and backoffs, FrozenClock moved on)."""

    result: ChatCompletion | list[ChatCompletionChunk] | GuardedLLMError | None
    answered: bool
    elapsed_s: float
    slept_s: float


class Rig:
    """One test's hostile server and driver; a fresh client for every call."""

    def __init__(self, driver: str, server: HostileServer, portal: Any | None) -> None:
        self.driver = driver
        self.server = server
        self._portal = portal
        self.registry = Registry.from_toml_text(config_text(server.url), source="fuzz-rig")
        self.clock = FrozenClock()
        self.state = MemoryBackend()
        # The breaker the test reads the clients' breaker state through (same config, same
        # backend): a half-open breaker must admit a probe after every call.
        self.breaker = CircuitBreaker(self.state, BREAKER, random=lambda: 0.0)

    # ---------------------------------------------------------------- set-up per call

    @contextmanager
    def fresh(
        self, *, half_open: bool = False, registry: Registry | None = None, **client_kwargs: Any
    ) -> Iterator[Any]:
        """A new client (over ``registry``, the rig's own by default) and a new backend,
        closed on exit; with ``half_open``, every deployment's breaker is tripped and its open
        interval over, so the first attempt of the call is a half-open probe."""
        registry = registry if registry is not None else self.registry
        self.clock = FrozenClock()
        self.state = MemoryBackend()
        self.breaker = CircuitBreaker(self.state, BREAKER, random=lambda: 0.0)
        if half_open:
            for name in registry.models:
                permit = self.breaker.acquire(name, self.clock())
                self.breaker.record(name, permit, "failure", 0.0, self.clock())
            self.clock.advance(BREAKER.open_s + 1.0)
        kwargs: dict[str, Any] = {
            "environ": ENVIRON,
            "random": lambda: 0.0,
            "clock": self.clock,
            "state": self.state,
            "breaker": BREAKER,
            "budgets": (BUDGET,),
            "max_response_bytes": MAX_RESPONSE_BYTES,
            **client_kwargs,
        }
        # A sleep moves FrozenClock on instead of waiting: a rate-limit wait then ends at once
        # (with FrozenClock standing still, the engine would wait for it for ever).
        if self.driver == "sync":
            kwargs.setdefault("sleep", self.clock.advance)
            with Client(registry, **kwargs) as client:
                yield client
            return

        async def skip(seconds: float) -> None:
            self.clock.advance(seconds)
            await anyio.lowlevel.checkpoint()

        kwargs.setdefault("sleep", skip)

        async def build() -> AsyncClient:  # in the loop: the transport belongs to it
            return AsyncClient(registry, **kwargs)

        client = self._portal.call(build)
        try:
            yield client
        finally:
            self._portal.call(client.aclose)

    # ---------------------------------------------------------------- one call

    def call(
        self,
        client: Any,
        *,
        how: How = "read",
        cancel_after_s: float = 0.0,
        **kwargs: Any,
    ) -> Called:
        """``client.chat.completions.create(**kwargs)``, a stream read as ``how`` says:
        to its end, closed after its first chunk, or dropped after its first chunk without
        closing (sync); ``"cancel"`` (async only) cancels the whole call after
        ``cancel_after_s``. Only a guardedllm error is caught: anything else fails the test."""
        started, engine_started = time.monotonic(), self.clock()
        if isinstance(client, Client):
            result, answered = _call_sync(client, how, kwargs)
        else:
            result, answered = self._portal.call(_call_async, client, how, cancel_after_s, kwargs)
        return Called(
            result=result,
            answered=answered,
            elapsed_s=time.monotonic() - started,
            slept_s=self.clock() - engine_started,
        )

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in the rig's event loop (async drivers), or here (sync)."""
        if self._portal is None:
            return function(*args)
        return self._portal.call(function, *args)

    # ---------------------------------------------------------------- guard state

    def tokens_left(self, deployment: str) -> float:
        """The level of ``deployment``'s tpm bucket now (without changing it)."""
        take = self.state.bucket_take(
            f"ratelimit:{deployment}:tokens",
            0,
            capacity=TPM,
            refill_per_s=TPM / 60,
            now=self.clock(),
        )
        return take.remaining

    def check_guards(self, client: Any, deployment: str, before: float, called: Called) -> None:
        """The invariants of the module docstring, after ``called`` on ``deployment``
        (``before``: its tpm level before the call)."""
        held = [s for s in client.spend() if s.reserved_usd != 0]
        assert not held, f"a spend reservation is still held after the call: {held}"

        breaker = client.health()[deployment].breaker
        if breaker.state == "half_open":
            permit = self.breaker.acquire(deployment, self.clock())
            assert permit.allowed, (
                f"{deployment}'s breaker is half-open with its probe slot still held after "
                "the call: no probe can ever go"
            )
            self.breaker.record(deployment, permit, "ignored", 0.0, self.clock())

        if called.slept_s:  # the bucket refilled meanwhile: its level says nothing exact
            return
        taken = before - self.tokens_left(deployment)
        result = called.result
        if not called.answered:
            assert taken == 0, f"{taken:g} tpm tokens are still held by a call that got no answer"
        elif isinstance(result, ChatCompletion) and result.usage is not None:
            used = result.usage.prompt_tokens + result.usage.completion_tokens
            assert abs(taken - used) <= 1e-9 * max(1, abs(used)), (
                f"the tpm bucket lost {taken:g} tokens for an answer that used {used}"
            )


@contextmanager
def open_rig(driver: str, server: HostileServer) -> Iterator[Rig]:
    """A ``Rig`` for ``driver`` ("sync", "asyncio" or "trio") over ``server``."""
    with ExitStack() as stack:
        portal = None
        if driver != "sync":
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal(backend=driver))
        yield Rig(driver, server, portal)


# ------------------------------------------------------------------------ the calls themselves


def _call_sync(
    client: Client, how: How, kwargs: dict[str, Any]
) -> tuple[ChatCompletion | list[ChatCompletionChunk] | GuardedLLMError, bool]:
    answered = False
    try:
        result = client.chat.completions.create(**kwargs)
        answered = True
        if not kwargs.get("stream"):
            return result, True
        if how in ("read", "cancel"):
            with result:
                return list(result), True
        first = [next(iter(result), None)]
        if how == "close_early":
            result.close()
        # "abandon": the caller drops the stream without closing it; it is freed (and
        # settled) by reference counting alone.
        del result
        return [c for c in first if c is not None], True
    except GuardedLLMError as error:
        return error, answered


async def _call_async(
    client: AsyncClient, how: How, cancel_after_s: float, kwargs: dict[str, Any]
) -> tuple[ChatCompletion | list[ChatCompletionChunk] | GuardedLLMError | None, bool]:
    answered = False
    outcome: ChatCompletion | list[ChatCompletionChunk] | GuardedLLMError | None = None

    async def call() -> None:
        nonlocal answered, outcome
        result = await client.chat.completions.create(**kwargs)
        answered = True
        if not kwargs.get("stream"):
            outcome = result
            return
        chunks: list[ChatCompletionChunk] = []
        outcome = chunks
        async with result:
            async for chunk in result:
                chunks.append(chunk)
                if how == "close_early":
                    break  # leaving ``async with`` closes the stream

    try:
        if how == "cancel":
            with anyio.move_on_after(cancel_after_s):
                await call()
        else:
            await call()
    except GuardedLLMError as error:
        return error, answered
    return outcome, answered


def errors_in(error: BaseException) -> Iterator[str]:
    """Every text an error exposes: its message, repr, text attributes (excerpt, body, code),
    its attempts, and the same for the errors a traceback shows with it (its cause, and its
    context unless that is suppressed with ``from None``)."""
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        for value in vars(current).values():
            if isinstance(value, str):
                yield value
        for attempt in getattr(current, "attempts", ()):
            yield repr(attempt)
        shown = [current.__cause__]
        if not current.__suppress_context__:
            shown.append(current.__context__)
        stack.extend(cause for cause in shown if cause is not None)
