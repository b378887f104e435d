"""Shadow traffic over real HTTP: a copy of each sampled call goes to the candidate in the
background, through Client (a thread pool) and AsyncClient (tasks, asyncio and trio), and never
changes the caller's result, latency or error; copies in flight are capped."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from guardedllm import AsyncClient, Client, Registry
from guardedllm.errors import AllRoutesFailedError, ServerError
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from support import DRIVERS, ENVIRON, config_text

ROUTES = """
[routes.watched]
fallback = ["gpt-4o-mini"]
shadow = { deployment = "gemini-flash", sample = 1.0, max_in_flight = 2 }

[routes.sampled]
fallback = ["gpt-4o-mini"]
shadow = { deployment = "gemini-flash", sample = 0.5, max_in_flight = 8 }
"""

SHORT = [{"role": "user", "content": "Hi there"}]
GEMINI = "gemini-2.0-flash"
WAIT_S = 10.0  # the longest a test waits for background copies to settle


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(config_text(fake_provider) + ROUTES, source="test-config")


Scenario = Callable[[Any], Any]


def with_client(driver: str, registry: Registry, scenario: Callable[..., Any]) -> Any:
    """Run ``scenario(client, create, settle)`` through ``driver``: ``create`` makes a call,
    ``settle(done)`` waits (bounded) until ``done(client)`` holds, e.g. copies have ended."""

    def until(client: Any, done: Callable[[Any], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done(client) and time.monotonic() < deadline:
            time.sleep(0.01)

    if driver == "sync":
        with Client(registry, environ=ENVIRON) as client:

            def create(**kwargs: Any) -> Any:
                return client.chat.completions.create(**kwargs)

            return scenario(client, create, lambda done: until(client, done))

    async def main() -> Any:
        async with AsyncClient(registry, environ=ENVIRON) as client:
            calls: list[Any] = []

            async def settle_async(done: Callable[[Any], bool]) -> None:
                deadline = time.monotonic() + WAIT_S
                while not done(client) and time.monotonic() < deadline:
                    await anyio.sleep(0.01)

            async def create_async(**kwargs: Any) -> Any:
                return await client.chat.completions.create(**kwargs)

            steps = scenario(client, create_async, settle_async)
            for step in steps:
                calls.append(await step)
            return calls[-1] if calls else None

    return anyio.run(main, backend=driver)


def copies_ended(route: str, count: int) -> Callable[[Any], bool]:
    def done(client: Any) -> bool:
        stats = client.shadow_stats().get(route)
        return stats is not None and stats.answered + stats.failed >= count

    return done


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_copy_is_sent_and_compared_without_touching_the_answer(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(vendor="openai", content="same words")
    fake_provider.script(vendor="gemini", content="same words")

    def scenario(client: Any, create: Any, settle: Any) -> Any:
        if driver == "sync":
            response = create(model="watched", messages=SHORT, max_tokens=20)
            settle(copies_ended("watched", 1))
            return response, client.shadow_results(), client.shadow_stats()

        async def call() -> Any:
            return await create(model="watched", messages=SHORT, max_tokens=20)

        async def read() -> Any:
            await settle(copies_ended("watched", 1))
            return client.shadow_results(), client.shadow_stats()

        return [call(), read()]

    if driver == "sync":
        response, results, stats = with_client(driver, registry, scenario)
    else:
        results, stats = with_client(driver, registry, scenario)
        response = None
    if response is not None:
        assert isinstance(response, ChatCompletion)
        assert response.guard is not None
        assert response.guard.deployment == "gpt-4o-mini"
        assert any("inside the 1 sample" in d for d in response.guard.decisions)
    (result,) = results
    assert result.ok
    assert result.candidate == "gemini-flash"
    assert result.primary_deployment == "gpt-4o-mini"
    assert result.same_content is True
    assert result.completion is not None
    assert stats["watched"].sent == 1
    assert stats["watched"].answered == 1
    assert stats["watched"].in_flight == 0
    gemini = [r for r in fake_provider.requests if r.vendor == "gemini"]
    assert len(gemini) == 1
    assert "stream" not in gemini[0].path.lower() or ":generateContent" in gemini[0].path


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_hanging_candidate_neither_slows_the_caller_nor_piles_up(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(vendor="gemini", hang=True)

    def scenario(client: Any, create: Any, settle: Any) -> Any:
        if driver == "sync":
            answers = [create(model="watched", messages=SHORT) for _ in range(5)]
            return answers, client.shadow_stats()

        async def call() -> Any:
            return await create(model="watched", messages=SHORT)

        async def read() -> Any:
            return client.shadow_stats()

        return [call() for _ in range(5)] + [read()]

    outcome = with_client(driver, registry, scenario)
    stats = outcome[1] if driver == "sync" else outcome
    if driver == "sync":
        for answer in outcome[0]:
            assert answer.guard.deployment == "gpt-4o-mini"
    # Five calls answered while both copies still hang: the cap held, nothing queued.
    watched = stats["watched"]
    assert watched.sent == 2
    assert watched.skipped_full == 3
    assert watched.in_flight == 2
    assert watched.answered + watched.failed == 0
    assert len([r for r in fake_provider.requests if r.vendor == "openai"]) == 5


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failing_candidate_is_recorded_and_the_caller_never_sees_it(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(vendor="gemini", status=500)

    def scenario(client: Any, create: Any, settle: Any) -> Any:
        if driver == "sync":
            create(model="watched", messages=SHORT)
            settle(copies_ended("watched", 1))
            return client.shadow_results()

        async def call() -> Any:
            return await create(model="watched", messages=SHORT)

        async def read() -> Any:
            await settle(copies_ended("watched", 1))
            return client.shadow_results()

        return [call(), read()]

    (result,) = with_client(driver, registry, scenario)
    assert not result.ok
    assert result.error_type == "ServerError"
    assert result.primary_ok
    # One attempt: a copy is never retried or failed over.
    assert len([r for r in fake_provider.requests if r.vendor == "gemini"]) == 1


def test_the_caller_keeps_its_own_error_and_the_copy_still_goes(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(vendor="openai", status=500)
    with Client(registry, environ=ENVIRON, random=lambda: 0.0) as client:
        with pytest.raises(AllRoutesFailedError) as failed:
            client.chat.completions.create(model="watched", messages=SHORT)
        deadline = time.monotonic() + WAIT_S
        while not copies_ended("watched", 1)(client) and time.monotonic() < deadline:
            time.sleep(0.01)
        (result,) = client.shadow_results()
    assert isinstance(failed.value.__cause__, ServerError)
    assert result.ok
    assert not result.primary_ok
    assert result.primary_deployment is None


def test_sampling_is_sticky_by_key(registry: Registry, fake_provider: FakeProvider) -> None:
    users = [f"user-{n}" for n in range(20)]
    with Client(registry, environ=ENVIRON) as client:
        decisions = {}
        for user in users:
            response = client.chat.completions.create(model="sampled", messages=SHORT, user=user)
            decisions[user] = any("inside" in d for d in response.guard.decisions)
        again = {
            user: any(
                "inside" in d
                for d in client.chat.completions.create(
                    model="sampled", messages=SHORT, user=user
                ).guard.decisions
            )
            for user in users
        }
        sent = sum(decisions.values())
        deadline = time.monotonic() + WAIT_S
        while not copies_ended("sampled", 2 * sent)(client) and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = client.shadow_stats()["sampled"]
    assert decisions == again
    assert 0 < sent < len(users)
    assert stats.sent == 2 * sent
    assert stats.answered == 2 * sent


# ---------------------------------------------------------------------------- closing

BUSY = """
[routes.busy]
fallback = ["gpt-4o-mini"]
shadow = { deployment = "gemini-flash", sample = 1.0, max_in_flight = 8 }
"""


def test_a_copy_that_cannot_start_never_reaches_the_caller(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    # Your own http_client outlives the guardedllm client: after close() a call still goes
    # out, but its shadow copy cannot start. The caller still gets its answer.
    with httpx.Client() as http:
        client = Client(registry, environ=ENVIRON, http_client=http)
        client.close()
        response = client.chat.completions.create(model="watched", messages=SHORT)
    assert response.guard is not None
    assert response.guard.deployment == "gpt-4o-mini"
    assert any("could not start" in d for d in response.guard.decisions)
    assert client.shadow_stats()["watched"].in_flight == 0
    assert not [r for r in fake_provider.requests if r.vendor == "gemini"]


def test_closing_a_client_gives_every_place_back_and_never_blames_the_candidate(
    fake_provider: FakeProvider,
) -> None:
    registry = Registry.from_toml_text(config_text(fake_provider) + BUSY)
    fake_provider.script(vendor="gemini", latency=0.5)
    client = Client(registry, environ=ENVIRON)
    for _ in range(8):  # 8 copies, each waiting 0.5 s for its answer
        client.chat.completions.create(model="busy", messages=SHORT)
    client.close()  # abandons them at their next step; the pool closes after them
    deadline = time.monotonic() + WAIT_S
    while client.shadow_stats()["busy"].in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = client.shadow_stats()["busy"]
    assert stats.in_flight == 0
    assert stats.sent == 8
    assert stats.answered + stats.failed + stats.abandoned == 8
    assert stats.abandoned >= 1
    breaker = client.health()["gemini-flash"].breaker
    assert breaker.failures == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_closing_an_async_client_cancels_copies_and_gives_their_places_back(
    backend: str, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry.from_toml_text(config_text(fake_provider) + BUSY)
    fake_provider.script(vendor="gemini", hang=True)

    async def main() -> Any:
        client = AsyncClient(registry, environ=ENVIRON)
        await client.chat.completions.create(model="busy", messages=SHORT)
        await client.chat.completions.create(model="busy", messages=SHORT)
        await anyio.sleep(0.05)  # one copy under way, hanging; the other may not have started
        await client.aclose()
        until = time.monotonic() + WAIT_S  # cancelled copies unwind
        while client.shadow_stats()["busy"].in_flight and time.monotonic() < until:
            await anyio.sleep(0.01)
        return client

    with caplog.at_level("ERROR", logger="guardedllm"):
        client = anyio.run(main, backend=backend)
    stats = client.shadow_stats()["busy"]
    assert stats.in_flight == 0
    assert stats.sent == 2
    assert stats.abandoned == 2
    assert client.health()["gemini-flash"].breaker.failures == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_copies_under_concurrent_callers_are_all_accounted_for(
    fake_provider: FakeProvider,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    registry = Registry.from_toml_text(config_text(fake_provider) + BUSY)
    with Client(registry, environ=ENVIRON) as client:

        def calls(_: int) -> list[str | None]:
            return [
                client.chat.completions.create(model="busy", messages=SHORT).guard.deployment
                for _ in range(5)
            ]

        with ThreadPoolExecutor(max_workers=16) as pool:
            served = [d for batch in pool.map(calls, range(16)) for d in batch]
        until_settled = time.monotonic() + WAIT_S
        while client.shadow_stats()["busy"].in_flight and time.monotonic() < until_settled:
            time.sleep(0.01)
        stats = client.shadow_stats()["busy"]
    assert served == ["gpt-4o-mini"] * 80
    assert stats.sent + stats.skipped_full == 80  # every call sampled (sample = 1.0)
    assert stats.in_flight == 0
    assert stats.answered == stats.sent
    assert len([r for r in fake_provider.requests if r.vendor == "gemini"]) == stats.sent
