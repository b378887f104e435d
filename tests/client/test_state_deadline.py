"""A state step is bounded by its call's deadline, not only by the store's timeouts: a store
that stops answering mid-phase fails the call with its deadline error on time, and what the
late phase did on the store is let go of once it ends, exactly once. Through both drivers,
against a real redis-server put to sleep on purpose (``DEBUG SLEEP``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import redis

from guardedllm import Policy, Registry
from guardedllm.errors import DeadlineExceededError
from guardedllm.guards import SpendBudget
from guardedllm.state import RedisBackend
from guardedllm.state.flow import Op
from redis_server import RedisServer
from session import open_session

MESSAGES = [{"role": "user", "content": "Hello there"}]
BUDGET = SpendBudget(name="fleet", scope="global", window="day", limit_usd=10.0)
DEADLINE_S = 0.5
# Long beside the deadline, so that a call that waited for the store could not end in time.
SLEEP_S = 2.0
_PREFIXES = iter(range(10**6))


class SleepyStore(RedisBackend):
    """A RedisBackend whose server falls asleep (``DEBUG SLEEP``, sent on a connection of its
    own) just before the batch that reserves spend: a phase caught by a store that stops
    answering. Its own timeouts are far longer than the call's deadline."""

    def __init__(self, server: RedisServer) -> None:
        self.client = server.client(connection_pool=server.pool())
        super().__init__(self.client, key_prefix=f"late{next(_PREFIXES)}:")
        self.timeout_s = 5.0
        self.port = server.port
        self.asleep = threading.Event()

    def run_batch(self, batch: Sequence[Op]) -> list[Any]:
        if not self.asleep.is_set() and any(_reserves(op) for op in batch):
            self.asleep.set()
            with socket.create_connection(("127.0.0.1", self.port)) as conn:
                conn.sendall(f"DEBUG SLEEP {SLEEP_S}\r\n".encode())
                time.sleep(0.05)  # the server reads it before this batch arrives
        return super().run_batch(batch)


def _reserves(op: Op) -> bool:
    return op.name == "counter_add" and str(op.args[0]).startswith("spend:")


def spend_totals(client: redis.Redis, prefix: str) -> list[float]:
    """The ``total`` of every spend counter the store holds (reserved plus spent)."""
    keys = client.keys(f"{prefix}counter:*spend*:total")
    return [float(client.hget(key, "total") or 0.0) for key in keys]


def eventually(check: Callable[[], bool], within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_phase_the_store_holds_past_the_deadline_fails_the_call_on_time_and_lets_go_later(
    driver: str, registry: Registry, start_redis_server: Callable[..., RedisServer]
) -> None:
    server = start_redis_server("--enable-debug-command", "yes")
    store = SleepyStore(server)
    try:
        with open_session(
            driver,
            registry,
            policy=Policy(deadline_s=DEADLINE_S),
            state=store,
            budgets=[BUDGET],
        ) as session:
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                session.create(model="chat", messages=MESSAGES)
            elapsed = time.monotonic() - started
            assert store.asleep.is_set()  # the reservation's phase was the one held up
            # The call ended at its deadline, not when the store woke up.
            assert elapsed < SLEEP_S - 0.5
            # Once the store answers, the late reservation is made, then given back once.
            assert eventually(lambda: spend_totals(store.client, store.key_prefix) == [0.0])
            (status,) = session.spend()
            assert (status.reserved_usd, status.spent_usd) == (0.0, 0.0)
            # And the client carries on as before.
            assert session.create(model="chat", messages=MESSAGES).choices
    finally:
        store.client.close()
