"""Clients on a shared state store (Redis): every guard operation is I/O, so the async client
runs it off its event loop, on asyncio and trio alike, and a cancelled call's cleanup too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import redis

from guardedllm import AsyncClient, Registry
from guardedllm.errors import GuardedLLMError
from guardedllm.guards import SpendBudget
from guardedllm.state import RedisBackend
from guardedllm.state import _redis_ops as ops
from guardedllm.testing import FakeProvider
from redis_server import RedisServer
from support import ENVIRON

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
