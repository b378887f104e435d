"""Clients on a shared state store (Redis): every guard operation is I/O, so the async client
runs it off its event loop, on asyncio and trio alike, and a cancelled call's cleanup too."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import anyio
import pytest
import redis

from guardedllm import AsyncClient, Client, Registry
from guardedllm.errors import GuardedLLMError, StateError
from guardedllm.guards import SpendBudget
from guardedllm.state import FailoverBackend, RedisBackend
from guardedllm.state import _redis_ops as ops
from guardedllm.state.flow import Op
from guardedllm.telemetry import EVENT_LOCAL_STATE
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from redis_server import RedisServer
from session import open_session
from support import ENVIRON
from telemetry._recording import Recorded

MESSAGES = [{"role": "user", "content": "Hello there"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"
_PREFIXES = iter(range(10**6))


class ThreadRecordingBackend(RedisBackend):
    """A RedisBackend that notes the thread of every round trip it makes."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client, key_prefix=f"threads{next(_PREFIXES)}:")
        self.threads: list[int] = []

    def _run(self, call: ops.ScriptCall[Any]) -> Any:
        self.threads.append(threading.get_ident())
        return super()._run(call)

    def run_batch(self, batch: Sequence[Op]) -> list[Any]:
        self.threads.append(threading.get_ident())
        return super().run_batch(batch)

    def clock(self) -> float:
        self.threads.append(threading.get_ident())
        return super().clock()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def recording(redis_server: RedisServer) -> Iterator[ThreadRecordingBackend]:
    client = redis_server.client(connection_pool=redis_server.pool())
    yield ThreadRecordingBackend(client)
    client.close()


@pytest.mark.anyio
async def test_the_async_client_never_runs_a_state_operation_on_its_event_loop(
    anyio_backend: str,
    registry: Registry,
    fake_provider: FakeProvider,
    recording: ThreadRecordingBackend,
) -> None:
    loop_thread = threading.get_ident()
    budget = SpendBudget(name="all", scope="global", window="day", limit_usd=10.0)
    fake_provider.script(model=OPENAI_ID, status=500, times=1)  # a retry: readmit, backoff
    async with AsyncClient(
        registry, environ=ENVIRON, state=recording, budgets=[budget], random=lambda: 0.0
    ) as client:
        answered = await client.chat.completions.create(model="chat", messages=MESSAGES)
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        async with stream:
            chunks = [chunk async for chunk in stream]
        fake_provider.script(model=OPENAI_ID, not_found=True, times=1)  # marked unavailable
        with pytest.raises(GuardedLLMError):
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        fake_provider.script(model="claude-3-5-haiku-20241022", hang=True, times=1)
        with anyio.move_on_after(0.3) as cancelled:  # its cleanup goes to the background
            await client.chat.completions.create(model="claude-haiku", messages=MESSAGES)
        assert cancelled.cancelled_caught
    threads = list(recording.threads)  # before spend() below, which reads the store here

    assert [a.outcome for a in answered.guard.attempts] == ["error", "ok"]
    assert chunks
    assert stream.completed
    (status,) = client.spend()
    assert status.reserved_usd == 0  # the cancelled call's reservation was let go of
    assert status.spent_usd > 0
    assert len(threads) > 10
    assert loop_thread not in threads


# --------------------------------------------------------------------------- the store failing

BUDGET = SpendBudget(name="fleet", scope="global", window="day", limit_usd=10.0)
# Short enough for a test to wait out: the guards try the store again this soon.
COOL_OFF_S = 0.2


def store_keys(server: RedisServer) -> list[bytes]:
    with server.client() as client:
        return list(client.keys("*"))


def test_calls_answer_while_the_store_is_down_and_share_it_again_once_it_returns(
    driver: str,
    registry: Registry,
    fake_provider: FakeProvider,
    start_redis_server: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_redis_server()
    store = RedisBackend.from_url(server.url, timeout_s=0.5)
    failures: list[StateError] = []
    state = FailoverBackend(store, cool_off_s=COOL_OFF_S, on_failure=failures.append)
    caplog.set_level(logging.WARNING, logger="guardedllm")
    with open_session(driver, registry, state=state, budgets=[BUDGET]) as session:
        shared = session.create(model="chat", messages=MESSAGES)
        assert store_keys(server)  # the guards' state is on the store
        server.kill()
        during = [session.outcome(model="chat", messages=MESSAGES) for _ in range(3)]
        server.start()  # an empty store: persistence is off
        time.sleep(COOL_OFF_S * 1.5)
        after = session.create(model="chat", messages=MESSAGES)
        keys_after = store_keys(server)
    store.close()

    assert shared.guard.attempts[-1].outcome == "ok"
    assert [type(result).__name__ for result in during] == ["ChatCompletion"] * 3
    assert after.guard.attempts[-1].outcome == "ok"
    assert keys_after  # shared again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "failed" in w]) == 1, warnings  # once per outage
    assert len([w for w in warnings if "answers again" in w]) == 1, warnings
    assert failures  # counted, each
    assert all("password" not in str(error).lower() for error in failures)


def test_refuse_fails_a_call_under_a_spend_budget_closed_with_a_state_error(
    driver: str,
    registry: Registry,
    fake_provider: FakeProvider,
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server()
    store = RedisBackend.from_url(server.url, timeout_s=0.5)
    with ExitStack() as stack:
        budgeted = stack.enter_context(
            open_session(driver, registry, state=store, state_on_error="refuse", budgets=[BUDGET])
        )
        unbudgeted = stack.enter_context(
            open_session(driver, registry, state=store, state_on_error="refuse")
        )
        assert isinstance(budgeted.outcome(model="chat", messages=MESSAGES), ChatCompletion)
        sent = len(fake_provider.requests)
        server.kill()
        refused = budgeted.outcome(model="chat", messages=MESSAGES)
        refused_again = budgeted.outcome(model="chat", messages=MESSAGES)  # in the cool-off
        sent_while_down = len(fake_provider.requests) - sent
        other = unbudgeted.outcome(model="chat", messages=MESSAGES)
    store.close()

    assert isinstance(refused, StateError)
    assert isinstance(refused_again, StateError)
    assert sent_while_down == 0  # failed closed: nothing was sent untracked
    assert isinstance(other, ChatCompletion)  # the other guards carried on locally


def test_a_call_on_local_state_says_so_on_its_span_and_in_a_metric(
    registry: Registry, fake_provider: FakeProvider, start_redis_server: Callable[..., RedisServer]
) -> None:
    recorded = Recorded()
    server = start_redis_server()
    store = RedisBackend.from_url(server.url, timeout_s=0.5)
    with Client(registry, environ=ENVIRON, state=store, telemetry=recorded.telemetry) as client:
        client.chat.completions.create(model="chat", messages=MESSAGES)
        server.kill()
        client.chat.completions.create(model="chat", messages=MESSAGES)
    store.close()

    first, second = [s for s in recorded.spans() if s.name == "chat chat"]
    assert [e.name for e in first.events if e.name == EVENT_LOCAL_STATE] == []
    (event,) = [e for e in second.events if e.name == EVENT_LOCAL_STATE]
    assert event.attributes == {"guardedllm.state.on_error": "local"}
    (point,) = recorded.points("guardedllm.state.errors")
    assert point.value >= 1
    assert point.attributes["guardedllm.state.store"].startswith("redis://127.0.0.1:")
    recorded.tracer_provider.shutdown()
    recorded.meter_provider.shutdown()
