"""Policy(exact_tokens=True): the vendor's count-tokens endpoint replaces a stand-in count."""

from __future__ import annotations

import anyio
import pytest

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.testing import FakeProvider
from support import ENVIRON, Call

MESSAGES = [
    {"role": "system", "content": "Answer in one line."},
    {"role": "user", "content": "How many tokens is this, exactly? " * 10},
]
EXACT = Policy(exact_tokens=True)


@pytest.mark.parametrize(
    ("deployment", "path"),
    [
        ("claude-haiku", "/v1/messages/count_tokens"),
        ("gemini-flash", "/v1beta/models/gemini-2.0-flash:countTokens"),
    ],
)
def test_estimates_use_the_vendors_count(
    registry: Registry, fake_provider: FakeProvider, deployment: str, path: str
) -> None:
    with Client(registry, environ=ENVIRON) as client:
        stand_in = client.estimate(model=deployment, messages=MESSAGES)
        exact = client.estimate(model=deployment, messages=MESSAGES, policy=EXACT)
    assert not stand_in.exact
    assert exact.exact
    assert exact.input_tokens != stand_in.input_tokens
    assert "count-tokens endpoint" in exact.notes[0]
    (count_request,) = fake_provider.requests
    assert count_request.path == path
    assert count_request.endpoint == "count_tokens"


def test_the_async_client_counts_too(registry: Registry, fake_provider: FakeProvider) -> None:
    async def main() -> bool:
        async with AsyncClient(registry, environ=ENVIRON) as client:
            estimate = await client.estimate(model="claude-haiku", messages=MESSAGES, policy=EXACT)
        return estimate.exact

    assert anyio.run(main, backend="trio")
    assert fake_provider.requests[0].endpoint == "count_tokens"


def test_a_call_counts_first_then_sends(call: Call, fake_provider: FakeProvider) -> None:
    response = call(model="claude-haiku", messages=MESSAGES, policy=EXACT)
    count, chat = fake_provider.requests
    assert (count.endpoint, chat.endpoint) == ("count_tokens", "chat")
    estimate = response.guard.estimate
    assert estimate.exact
    # The fake bills what its count endpoint counts.
    assert estimate.input_tokens == response.usage.prompt_tokens


def test_openai_needs_no_count_request(call: Call, fake_provider: FakeProvider) -> None:
    response = call(model="gpt-4o-mini", messages=MESSAGES, policy=EXACT)
    assert response.guard.estimate.exact
    assert [r.endpoint for r in fake_provider.requests] == ["chat"]


def test_a_failed_count_says_so_and_the_call_goes_on(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(endpoint="count_tokens", status=500)
    response = call(model="claude-haiku", messages=MESSAGES, policy=EXACT)
    estimate = response.guard.estimate
    assert not estimate.exact
    assert "count-tokens call failed" in estimate.notes[-1]
    assert response.choices[0].message.content
