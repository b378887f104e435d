"""Guard operations as flows (``guardedllm.state.flow``): a lockstep of flows costs one batch per
round, not one per operation; a batch keeps its order; an operation that fails reaches its own
flow only; a store that lost its scripts mid-run is answered by loading them; the failover
backend goes local per batch; and a plain call on Redis costs at most one round trip per phase,
counted on the wire."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from guardedllm import Client, Registry
from guardedllm.errors import StateError
from guardedllm.guards import SpendBudget
from guardedllm.state import FailoverBackend, MemoryBackend, RedisBackend
from guardedllm.state import flow as ops
from guardedllm.state.flow import Flow, Op, lockstep, run, sequence
from redis_server import RedisServer
from support import ENVIRON

_PREFIXES = iter(range(10**6))


class BatchingMemory(MemoryBackend):
    """A MemoryBackend that takes batches, as a shared store does, and notes each one."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def run_batch(self, batch: Sequence[Op]) -> list[Any]:
        self.batches.append([op.name for op in batch])
        outcomes: list[Any] = []
        for op in batch:
            try:
                outcomes.append(op.apply(self))
            except Exception as error:
                outcomes.append(error)
        return outcomes


def counting_client(server: RedisServer) -> tuple[redis.Redis, list[int]]:
    """A client of ``server`` and the count of requests it sends (a command or a whole
    pipeline: one round trip each)."""
    sent = [0]

    class Counting(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent[0] += 1
            super().send_packed_command(command, check_health)

    pool = redis.BlockingConnectionPool(
        host="127.0.0.1", port=server.port, connection_class=Counting, timeout=30
    )
    return redis.Redis(connection_pool=pool), sent


@pytest.fixture
def counted(redis_server: RedisServer) -> Iterator[tuple[RedisBackend, list[int]]]:
    client, sent = counting_client(redis_server)
    backend = RedisBackend(client, key_prefix=f"flow{next(_PREFIXES)}:")
    # Connected, and its scripts loaded: what is counted from here is the operations alone.
    backend.value_get("warm", now=0.0)
    backend.counter_add("warm", 1.0, limit=None, expires_at=1.0, now=0.0)
    yield backend, sent
    client.close()


def chain(key: str, depth: int) -> Flow[float]:
    """``depth`` adds to one counter, each after the one before answered."""
    total = 0.0
    for _ in range(depth):
        _, total = yield ops.counter_add(key, 1.0, limit=None, expires_at=100.0, now=0.0)
    return total


# --------------------------------------------------------------------------- rounds


def test_a_lockstep_sends_one_batch_per_round_as_deep_as_its_deepest_flow() -> None:
    backend = BatchingMemory()

    def phase() -> Flow[list[Any]]:
        results: list[Any] = yield lockstep(chain("a", 1), chain("b", 3), chain("c", 2))
        return results

    assert run(backend, phase()) == [1.0, 3.0, 2.0]
    assert [len(batch) for batch in backend.batches] == [3, 2, 1]


def test_on_redis_a_round_is_one_round_trip(counted: tuple[RedisBackend, list[int]]) -> None:
    backend, sent = counted
    before = sent[0]

    def phase() -> Flow[list[Any]]:
        results: list[Any] = yield lockstep(chain("a", 1), chain("b", 3), chain("c", 2))
        return results

    assert run(backend, phase()) == [1.0, 3.0, 2.0]
    assert sent[0] - before == 3


def test_in_process_the_flows_of_a_lockstep_run_one_after_the_other() -> None:
    backend = MemoryBackend()  # no batches: nothing to save by them
    seen: list[str] = []

    def noted(name: str, flow: Flow[float]) -> Flow[float]:
        value = yield from flow
        seen.append(name)
        return value

    def phase() -> Flow[list[Any]]:
        results: list[Any] = yield lockstep(noted("b", chain("b", 3)), noted("a", chain("a", 1)))
        return results

    assert run(backend, phase()) == [3.0, 1.0]
    assert seen == ["b", "a"]


@pytest.mark.parametrize("kind", ["batching memory", "redis"])
def test_a_batch_keeps_its_order_so_a_later_flow_sees_an_earlier_ones_write(
    kind: str, redis_backends: Callable[[], RedisBackend]
) -> None:
    backend = BatchingMemory() if kind == "batching memory" else redis_backends()

    def write() -> Flow[None]:
        yield ops.counter_add("k", 5.0, limit=None, expires_at=100.0, now=0.0)

    def read() -> Flow[float]:
        totals = yield ops.counters_get(["k"], now=0.0)
        return float(totals["k"])

    _, seen = run(backend, _together(write(), read()))
    assert seen == 5.0
    # And a flow that needs another's whole result runs after it.
    assert run(backend, sequence(chain("s", 2), read())) == [2.0, 5.0]


def _together(*flows: Flow[Any]) -> Flow[list[Any]]:
    results: list[Any] = yield lockstep(*flows)
    return results


# --------------------------------------------------------------------------- failures


def test_an_operation_the_store_refuses_fails_its_own_flow_and_no_other(
    redis_server: RedisServer, counted: tuple[RedisBackend, list[int]]
) -> None:
    backend, sent = counted
    # Not a hash: the script's HGET on it is refused (WRONGTYPE), that operation alone.
    redis_server.client().lpush(f"{backend.key_prefix}value:bad", "x")
    finished: list[float] = []

    def good() -> Flow[None]:
        finished.append((yield from chain("fine", 2)))

    def bad() -> Flow[str | None]:
        value: str | None = yield ops.value_get("bad", now=0.0)
        return value

    before = sent[0]
    with pytest.raises(StateError, match="refused the operation"):
        run(backend, _together(bad(), good()))
    assert finished == [2.0]  # the other flow ran to its end
    assert sent[0] - before == 2
    # A list request gets the error of its failed operation thrown in.
    with pytest.raises(StateError):
        run(backend, _list_request())


def _list_request() -> Flow[list[Any]]:
    results: list[Any] = yield [
        ops.counter_add("ok", 1.0, limit=None, expires_at=100.0, now=0.0),
        ops.value_get("bad", now=0.0),
    ]
    return results


def test_scripts_flushed_mid_run_are_loaded_and_only_those_operations_sent_again(
    redis_server: RedisServer, counted: tuple[RedisBackend, list[int]]
) -> None:
    backend, sent = counted

    def flushing() -> Flow[float]:
        total = yield from chain("f", 1)
        redis_server.client().script_flush()  # between two rounds of the same phase
        _, total = yield ops.counter_add("f", 1.0, limit=None, expires_at=100.0, now=0.0)
        return total

    before = sent[0]
    assert run(backend, _together(flushing(), chain("g", 2))) == [2.0, 2.0]
    # Round one; round two finds NOSCRIPT and sends the loads and the two operations again.
    assert sent[0] - before == 3
    assert run(backend, chain("f", 1)) == 3.0  # nothing was applied twice


def test_a_batch_the_store_fails_goes_local_as_a_whole(
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server()
    client = server.client(socket_timeout=2, socket_connect_timeout=2)
    failures: list[StateError] = []
    backend = FailoverBackend(RedisBackend(client, key_prefix="f:"), on_failure=failures.append)
    server.kill()
    try:
        assert run(backend, _together(chain("a", 2), chain("b", 1))) == [2.0, 1.0]
        assert backend.local_ops == 3
        assert len(failures) == 1  # one failed round trip, then the cool-off serves locally
    finally:
        client.close()


def test_an_operation_the_store_refuses_alone_goes_local_alone(redis_server: RedisServer) -> None:
    client = redis_server.client()
    failures: list[StateError] = []
    store = RedisBackend(client, key_prefix=f"alone{next(_PREFIXES)}:")
    client.lpush(f"{store.key_prefix}value:bad", "x")
    backend = FailoverBackend(store, on_failure=failures.append)

    def bad() -> Flow[str | None]:
        value: str | None = yield ops.value_get("bad", now=0.0)
        return value

    try:
        assert run(backend, _together(bad(), chain("good", 1))) == [None, 1.0]
        assert (backend.local_ops, len(failures)) == (1, 1)
        assert store.counters_get(["good"], now=0.0) == {"good": 1.0}  # on the store
    finally:
        client.close()


def test_spend_under_refuse_gets_the_error_while_the_rest_of_the_batch_goes_local(
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server()
    client = server.client(socket_timeout=2, socket_connect_timeout=2)
    backend = FailoverBackend(RedisBackend(client, key_prefix="r:"), on_error="refuse")
    server.kill()

    def spend() -> Flow[None]:
        yield ops.counter_add("spend:x:total", 1.0, limit=None, expires_at=100.0, now=0.0)

    try:
        with pytest.raises(StateError):
            run(backend, _together(spend(), chain("other", 1)))
        assert backend.local_ops == 1  # the other guard's operation, kept locally
    finally:
        client.close()


# --------------------------------------------------------------------------- a whole call


def test_a_plain_call_costs_one_round_trip_per_phase(
    redis_server: RedisServer, registry: Registry
) -> None:
    """Admission, reservation (with the retry budget's deposit), rate limit and settlement:
    four round trips for a call that answers at once, every guard on and a spend budget; five
    is the target (the store's clock is read now and then too)."""
    client, sent = counting_client(redis_server)
    state = RedisBackend(client, key_prefix=f"trips{next(_PREFIXES)}:")
    budget = SpendBudget(name="all", scope="global", window="day", limit_usd=100.0)
    with Client(registry, environ=ENVIRON, state=state, budgets=[budget]) as guarded:
        guarded.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        per_call = []
        for _ in range(10):
            before = sent[0]
            guarded.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}]
            )
            per_call.append(sent[0] - before)
    client.close()
    assert max(per_call) <= 5, per_call
    assert min(per_call) == 4, per_call


def test_the_sync_runner_still_serves_plain_method_calls(
    redis_backends: Callable[[], RedisBackend],
) -> None:
    from guardedllm.guards import RateLimiter

    for backend in (MemoryBackend(), redis_backends()):
        limiter = RateLimiter(backend)
        assert limiter.acquire("d", rpm=2, tpm=100, tokens=60, now=0.0).granted
        refused = limiter.acquire("d", rpm=2, tpm=100, tokens=60, now=0.0)
        assert (refused.granted, refused.limited_by) == (False, "tpm")
        # The refused take held nothing: one request slot is still there.
        assert limiter.acquire("d", rpm=2, tpm=100, tokens=10, now=0.0).granted
        assert not limiter.acquire("d", rpm=2, tpm=100, tokens=1, now=0.0).granted


def test_with_both_limits_configured_a_take_is_one_round_trip_and_a_pause_holds_nothing(
    counted: tuple[RedisBackend, list[int]],
) -> None:
    from guardedllm.guards import RateLimiter, RetryAfter

    backend, sent = counted
    limiter = RateLimiter(backend)
    limiter.acquire("warm", rpm=10, tpm=1000, tokens=100, now=0.0)  # its scripts loaded
    before = sent[0]
    assert limiter.acquire("d", rpm=10, tpm=1000, tokens=100, now=0.0).granted
    assert sent[0] - before == 1  # the pause read and both takes in one pipeline
    limiter.pause("d", RetryAfter(asked_s=5.0, wait_s=5.0), now=0.0)
    refused = limiter.acquire("d", rpm=10, tpm=1000, tokens=100, now=0.0)
    assert (refused.granted, refused.limited_by) == (False, "retry-after")
    # The takes that went out beside the pause's read came straight back.
    levels = [
        limiter._take("d", kind, 0, limit, 0.0).apply(backend).remaining
        for kind, limit in (("requests", 10), ("tokens", 1000))
    ]
    assert levels == [9.0, 900.0]
