"""What only the Redis backend has: the same answers as MemoryBackend down to the last bit of a
float, keys that all expire, cluster hash tags, scripts reloaded after a flush, the server's
clock, URLs without passwords, typed errors that never show one, and the async twin."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.crc
from hypothesis import given, settings
from hypothesis import strategies as st

from guardedllm import defaults
from guardedllm.errors import ConfigError, StateError
from guardedllm.guards.retry_budget import RetryBudget
from guardedllm.guards.spend import SpendBudget, SpendLedger
from guardedllm.state import AsyncRedisBackend, MemoryBackend, RedisBackend
from guardedllm.state._server_clock import ServerClock
from redis_server import RedisServer

# ---------------------------------------------------------------- the same answers as memory

KEYS = st.sampled_from(["a", "b:1", "b:2"])
NUMBERS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from(
    [0.0, 0.1, 1 / 3, 1e-300, 2.0**53 + 2]
)
# Window sums may add slices in another order than memory does: exact in quarters.
QUARTERS = st.integers(min_value=-400, max_value=400).map(lambda n: n / 4)
POSITIVE = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
# (operation, arguments) steps on one shared virtual clock that mostly moves forward.
STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("bucket_take"),
            st.fixed_dictionaries(
                {
                    "key": KEYS,
                    "amount": POSITIVE,
                    "capacity": POSITIVE,
                    "refill_per_s": POSITIVE,
                    "allow_debt": st.booleans(),
                }
            ),
        ),
        st.tuples(
            st.just("bucket_put"),
            st.fixed_dictionaries(
                {"key": KEYS, "amount": NUMBERS, "capacity": POSITIVE, "refill_per_s": POSITIVE}
            ),
        ),
        st.tuples(
            st.just("bucket_set"),
            st.fixed_dictionaries(
                {"key": KEYS, "level": NUMBERS, "capacity": POSITIVE, "refill_per_s": POSITIVE}
            ),
        ),
        st.tuples(
            st.just("counter_add"),
            st.fixed_dictionaries(
                {
                    "key": KEYS,
                    "amount": NUMBERS,
                    "limit": st.none() | NUMBERS,
                    "expires_in": st.floats(min_value=-5.0, max_value=50.0),
                }
            ),
        ),
        st.tuples(st.just("counters_get"), st.fixed_dictionaries({"keys": st.lists(KEYS)})),
        st.tuples(
            st.just("value_cas"),
            st.fixed_dictionaries(
                {
                    "key": KEYS,
                    "expected": st.none() | st.sampled_from(["x", "y", ""]),
                    "value": st.none() | st.sampled_from(["x", "y", "", "é"]),
                    "expires_in": st.none() | st.floats(min_value=-5.0, max_value=50.0),
                }
            ),
        ),
        st.tuples(st.just("value_get"), st.fixed_dictionaries({"key": KEYS})),
        st.tuples(
            st.just("window_add"),
            st.fixed_dictionaries(
                {
                    "key": KEYS,
                    "amounts": st.tuples(QUARTERS, QUARTERS),
                    "slice_index": st.integers(min_value=0, max_value=30),
                    "slices": st.integers(min_value=1, max_value=5),
                    "expires_in": st.floats(min_value=-5.0, max_value=50.0),
                }
            ),
        ),
        st.tuples(
            st.just("window_get"),
            st.fixed_dictionaries(
                {
                    "key": KEYS,
                    "width": st.sampled_from([2, 3]),
                    "slice_index": st.integers(min_value=0, max_value=30),
                    "slices": st.integers(min_value=1, max_value=5),
                }
            ),
        ),
    ).map(lambda step: (step, None)),
    max_size=30,
).flatmap(
    lambda steps: st.tuples(
        st.just([step for step, _ in steps]),
        st.lists(
            st.floats(min_value=-1.0, max_value=10.0), min_size=len(steps), max_size=len(steps)
        ),
    )
)


def _apply(backend: Any, operation: str, arguments: dict[str, Any], now: float) -> object:
    arguments = dict(arguments)
    if "expires_in" in arguments:
        expires_in = arguments.pop("expires_in")
        arguments["expires_at"] = None if expires_in is None else now + expires_in
    if operation == "counters_get":
        return dict(backend.counters_get(arguments["keys"], now=now))
    if operation == "value_cas":
        key, expected, value = (
            arguments.pop("key"),
            arguments.pop("expected"),
            arguments.pop("value"),
        )
        return backend.value_cas(key, expected, value, now=now, **arguments)
    key = arguments.pop("key")
    if operation == "value_get":
        return backend.value_get(key, now=now)
    if operation == "window_add":
        return backend.window_add(key, arguments.pop("amounts"), now=now, **arguments)
    if operation == "window_get":
        return backend.window_get(key, now=now, **arguments)
    first = arguments.pop("amount" if "amount" in arguments else "level")
    return getattr(backend, operation)(key, first, now=now, **arguments)


def _same(a: object, b: object) -> bool:
    """Equal, counting nan as equal to nan (0 * inf)."""
    return repr(a) == repr(b) or a == b


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_redis_answers_what_memory_answers(
    redis_backends: Callable[[], RedisBackend],
    drawn: tuple[list[tuple[str, dict[str, Any]]], list[float]],
) -> None:
    steps, moves = drawn
    redis_backend, memory = redis_backends(), MemoryBackend()
    now = 1000.0
    for (operation, arguments), move in zip(steps, moves, strict=True):
        now += move  # sometimes backwards: a caller whose clock lags
        expected = _apply(memory, operation, arguments, now)
        got = _apply(redis_backend, operation, arguments, now)
        assert _same(got, expected), (operation, arguments, now)


# ---------------------------------------------------------------- expiry


def _ttls(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Each key's PTTL, but for keys that expired between the SCAN and their PTTL (-2)."""
    ttls = {key.decode(): client.pttl(key) for key in client.scan_iter(match=f"{prefix}*")}
    return {key: ttl for key, ttl in ttls.items() if ttl != -2}


def test_every_key_expires(redis_server: RedisServer, redis_backend: RedisBackend) -> None:
    backend = redis_backend
    backend.bucket_take("b", 1.0, capacity=5.0, refill_per_s=1.0, now=0.0)
    backend.bucket_take("never", 1.0, capacity=5.0, refill_per_s=0.0, now=0.0)
    backend.bucket_put("full", 1.0, capacity=5.0, refill_per_s=1.0, now=0.0)
    backend.counter_add("c:1", 1.0, limit=None, expires_at=math.inf, now=0.0)
    backend.counter_add("c:2", 1.0, limit=None, expires_at=-100.0, now=0.0)  # gone at once
    backend.window_add("w", (1.0,), slice_index=0, slices=4, expires_at=4.0, now=0.0)
    backend.value_cas("forever", None, "v", now=0.0)
    backend.value_cas("short", None, "v", expires_at=0.001, now=0.0)
    ttls = _ttls(redis_server.client(), backend.key_prefix)
    # c:2 was written already expired: gone, or about to go (a millisecond's expiry).
    lasting = {key: ttl for key, ttl in ttls.items() if not key.endswith(":2")}
    assert len(lasting) == 7, ttls
    assert all(ttl > 0 for ttl in lasting.values()), ttls
    assert all(ttl >= 0 for ttl in ttls.values()), ttls  # -1 would be a key without expiry


def test_a_guards_workload_leaves_no_key_without_expiry(
    redis_server: RedisServer, redis_backend: RedisBackend
) -> None:
    from guardedllm.guards.breaker import CircuitBreaker
    from guardedllm.guards.marks import UnavailableMarks
    from guardedllm.guards.ratelimit import RateLimiter

    breaker = CircuitBreaker(redis_backend, random=lambda: 0.5)
    limiter, marks = RateLimiter(redis_backend), UnavailableMarks(redis_backend)
    budget = RetryBudget(redis_backend)
    spend = SpendLedger(redis_backend, [SpendBudget(scope="global", window="day", limit_usd=1.0)])
    for step in range(200):
        now = step * 0.7
        permit = breaker.acquire("d", now)
        breaker.record("d", permit, "failure" if step % 3 else "success", 0.1, now)
        limiter.acquire("d", rpm=60, tpm=1000, tokens=10, now=now)
        budget.deposit("d", now)
        budget.try_withdraw("d", now)
        held = spend.reserve(route="r", key=None, amount_usd=0.001, wall_now=1.7e9 + now)
        spend.settle(held, 0.0005, wall_now=1.7e9 + now)
    marks.mark("d", until=200.0, reason="404", now=140.0)
    ttls = _ttls(redis_server.client(), redis_backend.key_prefix)
    assert len(ttls) > 10
    assert all(ttl > 0 for ttl in ttls.values()), {k: t for k, t in ttls.items() if t <= 0}


def test_ttls_run_until_the_key_reads_as_absent_plus_the_slack(
    redis_server: RedisServer, redis_backend: RedisBackend
) -> None:
    slack_ms = defaults.STATE_EXPIRY_SLACK_S * 1000
    backend = redis_backend
    backend.counter_add("c", 1.0, limit=None, expires_at=130.0, now=100.0)
    backend.value_cas("v", None, "x", expires_at=105.0, now=100.0)
    backend.value_cas("forever", None, "x", now=100.0)
    backend.bucket_take("b", 4.0, capacity=10.0, refill_per_s=0.5, now=100.0)  # full in 8 s
    backend.window_add("w", (1.0,), slice_index=10, slices=5, expires_at=150.0, now=100.0)
    ttls = {
        key.removeprefix(backend.key_prefix): ttl
        for key, ttl in _ttls(redis_server.client(), backend.key_prefix).items()
    }
    expected = {
        "counter:{c}": 30_000 + slack_ms,
        "value:v": 5_000 + slack_ms,
        "value:forever": defaults.STATE_MAX_TTL_S * 1000,
        "bucket:b": 8_000 + slack_ms,
        "window:w": 50_000 + slack_ms,
    }
    assert ttls.keys() == expected.keys()
    for key, ttl in ttls.items():
        assert expected[key] - 2_000 < ttl <= expected[key], key


# ---------------------------------------------------------------- key layout


def test_every_key_starts_with_the_prefix(redis_server: RedisServer) -> None:
    client = redis_server.client()
    backend = RedisBackend(client, key_prefix="app-one:")
    backend.counter_add("spend:global:*:day:0:total", 1.0, limit=None, expires_at=9.0, now=0.0)
    backend.value_cas("breaker:d", None, "closed", now=0.0)
    assert sorted(key.decode() for key in client.scan_iter(match="app-one:*")) == [
        "app-one:counter:{spend:global:*:day:0}:total",
        "app-one:value:breaker:d",
    ]
    assert repr(backend) == (
        f"RedisBackend(redis://127.0.0.1:{redis_server.port}/0, key_prefix='app-one:')"
    )


def _slot(backend: RedisBackend, kind: str, key: str) -> int:
    layout = backend._keys
    return redis.crc.key_slot(getattr(layout, kind)(key).encode())


def test_counters_read_together_share_a_cluster_slot(redis_backend: RedisBackend) -> None:
    slices = {_slot(redis_backend, "counter", f"retry_budget:gpt-4o:{n}") for n in range(50)}
    assert len(slices) == 1
    parts = {
        _slot(redis_backend, "counter", f"spend:key:tenant%3Aa:day:1700006400:{part}")
        for part in ("total", "settled")
    }
    assert len(parts) == 1
    # Single-key state spreads over the cluster: no tag, so deployments land apart.
    states = {_slot(redis_backend, "value", f"breaker:deployment-{n}") for n in range(50)}
    assert len(states) > 40


def test_counters_of_different_tags_are_read_one_tag_at_a_time(
    redis_backend: RedisBackend,
) -> None:
    from guardedllm.state import _redis_ops

    calls = _redis_ops.counters_get(redis_backend._keys, ["a:1", "a:2", "b:1", "a:1", "c"], now=0.0)
    p = redis_backend.key_prefix
    assert [call.keys for call in calls] == [
        (f"{p}counter:{{a}}:1", f"{p}counter:{{a}}:2"),
        (f"{p}counter:{{b}}:1",),
        (f"{p}counter:{{c}}",),
    ]


# ---------------------------------------------------------------- scripts and clients


def test_scripts_are_loaded_again_after_the_server_forgets_them(
    redis_server: RedisServer, redis_backend: RedisBackend
) -> None:
    redis_backend.counter_add("c", 1.0, limit=None, expires_at=10.0, now=0.0)
    redis_server.client().script_flush()
    assert redis_backend.counter_add("c", 1.0, limit=None, expires_at=10.0, now=0.0) == (
        True,
        2.0,
    )


def test_a_client_that_decodes_responses_works_the_same(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.client(decode_responses=True), key_prefix="decoded:")
    assert backend.value_cas("v", None, "é", now=0.0)
    assert backend.value_get("v", now=0.0) == "é"
    assert backend.counter_add("c", 0.1, limit=None, expires_at=9.0, now=0.0) == (True, 0.1)


def test_ping_measures_a_round_trip(redis_backend: RedisBackend) -> None:
    assert 0 < redis_backend.ping() < defaults.STATE_TIMEOUT_S * 20


def test_the_clock_is_the_servers(redis_server: RedisServer, redis_backend: RedisBackend) -> None:
    before = redis_server.client().time()
    estimate = redis_backend.clock()
    after = redis_server.client().time()
    error = redis_backend.clock_error_s
    assert before[0] + before[1] / 1e6 - error <= estimate <= after[0] + after[1] / 1e6 + error
    assert redis_backend.clock() >= estimate


def test_the_clock_offset_is_taken_at_the_midpoint_of_the_round_trip() -> None:
    local = [1000.0]
    clock = ServerClock(resync_s=60.0, local=lambda: local[0])
    assert clock.read() is None  # nothing measured yet
    # TIME sent at 1000.0, answered at 1000.2; the server said 1500.05.
    assert clock.measured(1000.0, (1500, 50_000), 1000.2) == pytest.approx(1500.15)
    assert clock.offset == pytest.approx(499.95)
    assert clock.error_s == pytest.approx(0.1)
    local[0] = 1030.0
    assert clock.read() == pytest.approx(1529.95)
    local[0] = 1060.2  # resync_s after the measurement
    assert clock.read() is None
    local[0] = 999.0  # the local clock stepped back past the measurement
    assert clock.read() is None


# ---------------------------------------------------------------- from_url


def test_from_url_connects_with_the_password_from_the_environment(
    start_redis_server: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_redis_server("--requirepass", "s3cret-pass")
    monkeypatch.setenv("TEST_REDIS_PASSWORD", "s3cret-pass")
    backend = RedisBackend.from_url(server.url, password_env="TEST_REDIS_PASSWORD")
    try:
        assert backend.counter_add("c", 1.0, limit=None, expires_at=9.0, now=0.0) == (True, 1.0)
        assert "s3cret" not in repr(backend)
        assert repr(backend) == (
            f"RedisBackend(redis://127.0.0.1:{server.port}/0, key_prefix='guardedllm:')"
        )
    finally:
        backend.close()


def _full_text(error: BaseException) -> str:
    """Everything an error shows: its message, repr, and every chained exception's."""
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        parts += [str(seen), repr(seen), *map(str, seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.mark.parametrize("given_password", ["wrong-pass-123", None])
def test_refused_credentials_are_a_state_error_without_the_password(
    start_redis_server: Callable[..., RedisServer],
    monkeypatch: pytest.MonkeyPatch,
    given_password: str | None,
) -> None:
    server = start_redis_server("--requirepass", "s3cret-pass")
    if given_password is not None:
        monkeypatch.setenv("TEST_REDIS_PASSWORD", given_password)
    backend = RedisBackend.from_url(
        server.url, password_env="TEST_REDIS_PASSWORD" if given_password else None
    )
    with pytest.raises(StateError, match="refused the credentials") as caught:
        backend.value_get("v", now=0.0)
    backend.close()
    assert f"127.0.0.1:{server.port}" in str(caught.value)
    assert caught.value.store == backend._store
    text = _full_text(caught.value)
    assert "s3cret" not in text
    assert given_password is None or given_password not in text


def test_a_store_that_is_not_there_is_a_state_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        backend = RedisBackend.from_url(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(StateError, match="could not be reached") as caught:
            backend.bucket_take("b", 1.0, capacity=1.0, refill_per_s=1.0, now=0.0)
        assert f"redis://127.0.0.1:{port}/0" in str(caught.value)
        with pytest.raises(StateError):
            backend.ping()
        backend.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    listener.close()


def test_a_store_that_does_not_answer_in_time_is_a_state_error(silent_server: int) -> None:
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{silent_server}", timeout_s=0.2)
    with pytest.raises(StateError, match="did not answer in time"):
        backend.counter_add("c", 1.0, limit=None, expires_at=9.0, now=0.0)
    backend.close()


def test_a_killed_and_restarted_store_fails_then_serves_again(
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server()
    backend = RedisBackend.from_url(server.url)
    assert backend.counter_add("c", 1.0, limit=None, expires_at=9.0, now=0.0) == (True, 1.0)
    server.kill()
    with pytest.raises(StateError):
        backend.counter_add("c", 1.0, limit=None, expires_at=9.0, now=0.0)
    server.start()
    # The state went with the server; the scripts are loaded again.
    assert backend.counter_add("c", 1.0, limit=None, expires_at=9.0, now=0.0) == (True, 1.0)
    backend.close()


def test_a_unix_socket_url_works(redis_server: RedisServer) -> None:
    backend = RedisBackend.from_url(f"unix://{redis_server.socket_path}?db=0", key_prefix="u:")
    assert backend.value_cas("v", None, "x", now=0.0)
    assert repr(backend) == f"RedisBackend(unix://{redis_server.socket_path}?db=0, key_prefix='u:')"
    backend.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2-pass@127.0.0.1:6379/0",
        "redis://user:hunter2-pass@127.0.0.1:6379/0",
        "rediss://127.0.0.1:6379/0?password=hunter2-pass",
    ],
)
def test_a_url_with_a_password_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisBackend.from_url(url)
    assert [problem.key for problem in caught.value.problems] == ["state.url"]
    assert "password_env" in str(caught.value)
    assert "hunter2" not in _full_text(caught.value)


def test_every_problem_of_a_url_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_REDIS_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as caught:
        AsyncRedisBackend.from_url(
            "http://:pw-123456@localhost", password_env="NO_SUCH_REDIS_PASSWORD", timeout_s=0.0
        )
    messages = [str(problem) for problem in caught.value.problems]
    assert [problem.key for problem in caught.value.problems] == [
        "state.url",
        "state.url",
        "state.password_env",
        "state.timeout_s",
    ]
    assert "redis://, rediss:// or unix://" in messages[0]
    assert "'NO_SUCH_REDIS_PASSWORD' is not set" in messages[2]
    assert "pw-123456" not in _full_text(caught.value)


def test_options_redis_py_refuses_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"state\.url"):
        RedisBackend.from_url("redis://127.0.0.1:6379/0?db=zero")


def test_a_client_passed_in_stays_open(redis_server: RedisServer) -> None:
    client = redis_server.client()
    RedisBackend(client).close()
    assert client.ping()
    client.close()


# ---------------------------------------------------------------- import cost


def test_importing_guardedllm_state_does_not_import_redis() -> None:
    code = (
        "import sys, guardedllm, guardedllm.state\n"
        "assert 'redis' not in sys.modules, 'imported by guardedllm.state'\n"
        "guardedllm.state.RedisBackend\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=dict(os.environ))


# ---------------------------------------------------------------- the async twin


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


async def test_the_async_backend_answers_what_the_sync_one_does(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    sync = RedisBackend(redis_server.client(), key_prefix="sync:")
    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    asynchronous = AsyncRedisBackend(client, key_prefix="async:")
    steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("bucket_take", ("b", 3.0), {"capacity": 5.0, "refill_per_s": 1.0, "now": 0.0}),
        ("bucket_take", ("b", 3.0), {"capacity": 5.0, "refill_per_s": 1.0, "now": 0.5}),
        ("bucket_put", ("b", 1.0), {"capacity": 5.0, "refill_per_s": 1.0, "now": 1.0}),
        ("bucket_set", ("b", 0.5), {"capacity": 5.0, "refill_per_s": 1.0, "now": 1.0}),
        ("counter_add", ("c:1", 0.7), {"limit": 1.0, "expires_at": 9.0, "now": 1.0}),
        ("counter_add", ("c:1", 0.7), {"limit": 1.0, "expires_at": 9.0, "now": 1.0}),
        ("counters_get", (["c:1", "c:2", "d"],), {"now": 2.0}),
        (
            "window_add",
            ("w", (1.0, 0.0)),
            {"slice_index": 3, "slices": 2, "expires_at": 5.0, "now": 3.0},
        ),
        ("window_get", ("w",), {"width": 2, "slice_index": 4, "slices": 2, "now": 4.0}),
        ("value_cas", ("v", None, "x"), {"expires_at": 9.0, "now": 4.0}),
        ("value_cas", ("v", "y", None), {"now": 4.0}),
        ("value_get", ("v",), {"now": 4.0}),
    ]
    for name, args, kwargs in steps:
        expected = getattr(sync, name)(*args, **kwargs)
        assert await getattr(asynchronous, name)(*args, **kwargs) == expected, name
    assert await asynchronous.ping() > 0
    assert abs(await asynchronous.clock() - sync.clock()) < 1.0
    assert repr(asynchronous) == (
        f"AsyncRedisBackend(redis://127.0.0.1:{redis_server.port}/0, key_prefix='async:')"
    )
    await client.aclose()


async def test_the_async_backend_shares_state_with_the_sync_one(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    sync = RedisBackend(redis_server.client(), key_prefix="shared:")
    asynchronous = AsyncRedisBackend.from_url(redis_server.url, key_prefix="shared:")
    sync.counter_add("c", 2.0, limit=None, expires_at=9.0, now=0.0)
    assert await asynchronous.counter_add("c", 1.0, limit=2.5, expires_at=9.0, now=0.0) == (
        False,
        2.0,
    )
    await asynchronous.aclose()


async def test_async_failures_are_state_errors(anyio_backend: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        backend = AsyncRedisBackend.from_url(f"redis://127.0.0.1:{probe.getsockname()[1]}")
        with pytest.raises(StateError, match="could not be reached"):
            await backend.value_get("v", now=0.0)
        await backend.aclose()
