"""``guardedllm demo``: a short scripted story against an embedded FakeProvider.

No API keys and no network: the fake serves OpenAI, Anthropic, Gemini and an OpenAI-compatible
server on loopback, scripted to fail the way production does. Each call prints what the guards
did: the route, every attempt, tokens and cost.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING

from guardedllm.client import Client
from guardedllm.errors import GuardedLLMError
from guardedllm.policy import Policy
from guardedllm.registry import Registry
from guardedllm.testing import FakeProvider
from guardedllm.types import Attempt, ChatCompletion, GuardInfo

if TYPE_CHECKING:
    from guardedllm.params import ChatCompletionMessageParam

__all__ = ["run_demo"]

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Where is my parcel? Order 4411."}
]

# The vendor model ids the fake knows; anything else answers 404 model-not-found.
KNOWN_MODELS = {
    "gpt-4o-mini-2024-07-18",
    "claude-3-5-haiku-20241022",
    "gemini-2.0-flash",
    "llama-3.2-1b-instruct",
}


def _attempt_line(attempt: Attempt) -> str:
    if attempt.outcome == "skipped":
        return f"   skipped  {attempt.deployment}: {attempt.error_type}"
    status = attempt.status if attempt.status is not None else "-"
    failure = f"  {attempt.error_type}" if attempt.error_type else ""
    return (
        f"   attempt  {attempt.deployment} #{attempt.number}  {status}  "
        f"{attempt.latency_s * 1000:.0f} ms{failure}"
    )


def _show_guard(guard: GuardInfo) -> None:
    print(f"   route    {guard.route_reason}")
    for attempt in guard.attempts:
        print(_attempt_line(attempt))


def _show_response(response: ChatCompletion) -> None:
    assert response.guard is not None
    _show_guard(response.guard)
    usage = response.usage
    tokens = f"{usage.prompt_tokens} in / {usage.completion_tokens} out" if usage else "unknown"
    cost = response.guard.cost_usd
    print(f"   answer   {response.choices[0].message.content!r}")
    print(f"   tokens   {tokens}   cost ${cost or 0:.6f}   by {response.guard.deployment}")


def _show_error(exc: GuardedLLMError, fake: FakeProvider, sent_before: int) -> None:
    for attempt in exc.attempts:
        print(_attempt_line(attempt))
    first_line = str(exc).splitlines()[0]
    print(f"   refused  {type(exc).__name__}: {first_line}")
    print(f"   sent     {len(fake.requests) - sent_before} HTTP request(s)")


def _chapter(number: int, title: str, body: Callable[[], None]) -> None:
    print(f"\n{number}. {title}")
    body()


def run_demo() -> int:
    """Tell the story; returns 0 when every chapter behaved as the guards promise."""
    template = resources.files("guardedllm.cli").joinpath("demo.toml").read_text("utf-8")
    with FakeProvider(models=KNOWN_MODELS) as fake:
        registry = Registry.from_toml_text(
            template.replace("{fake}", fake.base_url), source="demo.toml"
        )
        print(f"guardedllm demo: a fake OpenAI, Anthropic and Gemini on {fake.base_url}")
        with Client(registry) as client:
            create = client.chat.completions.create

            def expect_error(**kwargs: object) -> None:
                sent = len(fake.requests)
                try:
                    create(**kwargs)  # type: ignore[call-overload]
                except GuardedLLMError as exc:
                    _show_error(exc, fake, sent)
                    return
                raise AssertionError("the guards let a call through that they should refuse")

            def healthy() -> None:
                _show_response(create(model="support", messages=QUESTION, max_tokens=60))

            def outage() -> None:
                fake.script(model="gpt-4o-mini-2024-07-18", status=503, times=2)
                _show_response(create(model="support", messages=QUESTION, max_tokens=60))

            def missing_model() -> None:
                _show_response(create(model="summarize", messages=QUESTION, max_tokens=60))

            def streaming() -> None:
                fake.script(model="claude-3-5-haiku-20241022", chunks=4)
                with create(
                    model="claude-haiku", messages=QUESTION, max_tokens=60, stream=True
                ) as stream:
                    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
                _show_guard(stream.guard)
                print(f"   stream   {len(pieces)} chunks: {''.join(pieces)!r}")
                print(f"   cost     ${stream.guard.cost_usd or 0:.6f} (from the stream's usage)")

            def rate_limited() -> None:
                fake.script(model="gpt-4o-mini-2024-07-18", status=429, retry_after=3600, times=1)
                expect_error(model="gpt-4o-mini", messages=QUESTION, policy=Policy(deadline_s=5))

            def cost_cap() -> None:
                expect_error(
                    model="support",
                    messages=QUESTION,
                    max_tokens=8000,
                    policy=Policy(max_cost_usd=0.001),
                )

            def context() -> None:
                long_text = "The parcel history, line by line. " * 800
                expect_error(model="small-llama", messages=[{"role": "user", "content": long_text}])

            _chapter(1, "A healthy call to the 'support' route", healthy)
            _chapter(2, "OpenAI answers 503 twice: one retry, then fall back", outage)
            _chapter(3, "An alias whose model id does not exist: 404, no retry", missing_model)
            _chapter(4, "Streaming from Anthropic", streaming)
            _chapter(5, "429 with Retry-After: 3600 and a 5 s deadline: fail at once", rate_limited)
            _chapter(6, "A worst case over the $0.001 cost cap: refused before sending", cost_cap)
            _chapter(7, "A prompt too long for a 4k-token model: refused before sending", context)
        print(f"\nThe fake received {len(fake.requests)} requests in all.")
        print("Next: `guardedllm check CONFIG --env staging --env prod` and `guardedllm smoke`.")
    return 0
