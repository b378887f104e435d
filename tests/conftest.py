"""Fixtures shared across the suite: a registry pointed at the ``fake_provider`` fixture's
server, ``call``, one scenario run through every driver (see ``support.py``), and the state
backends guard tests run against (``backend``, ``new_backend``: memory and Redis, the latter on
a real redis-server, see ``redis_server.py``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from guardedllm import Registry
from guardedllm.state import MemoryBackend, RedisBackend, StateBackend
from guardedllm.testing import FakeProvider
from redis_server import RedisServer, redis_server_binary
from support import DRIVERS, GUARD_STATE, Call, config_text, make_call


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(config_text(fake_provider), source="test-config")


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def call(driver: str, registry: Registry) -> Call:
    return make_call(driver, registry)


# --------------------------------------------------------------------------- state backends


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix (``redis_prefix``)."""
    server = RedisServer(redis_server_binary())
    yield server
    server.stop()


@pytest.fixture
def start_redis_server() -> Iterator[Callable[..., RedisServer]]:
    """Start a redis-server of the test's own (with extra arguments: ``--requirepass``, ...),
    to kill or reconfigure without disturbing others; stopped when the test ends."""
    started: list[RedisServer] = []

    def start(*extra_args: str) -> RedisServer:
        started.append(RedisServer(redis_server_binary(), *extra_args))
        return started[-1]

    yield start
    for server in started:
        server.stop()


_PREFIXES = itertools.count()


def redis_prefix() -> str:
    """A key prefix no other backend of the session uses: a fresh, empty store."""
    return f"test{next(_PREFIXES)}:"


@pytest.fixture(scope="session")
def redis_backends(redis_server: RedisServer) -> Iterator[Callable[[], RedisBackend]]:
    # Threads beyond the pool's connections wait for one (the guards' tests start hundreds).
    client = redis_server.client(connection_pool=redis_server.pool())
    yield lambda: RedisBackend(client, key_prefix=redis_prefix())
    client.close()


@pytest.fixture(scope="session", params=["memory", "redis"])
def new_backend(request: pytest.FixtureRequest) -> Callable[[], StateBackend]:
    """Makes a fresh, empty backend of one kind (session-scoped, so hypothesis tests may call
    it for each example)."""
    if request.param == "memory":
        return MemoryBackend
    backends: Callable[[], RedisBackend] = request.getfixturevalue("redis_backends")
    return backends


@pytest.fixture
def backend(new_backend: Callable[[], StateBackend]) -> StateBackend:
    return new_backend()


@pytest.fixture
def redis_backend(redis_backends: Callable[[], RedisBackend]) -> RedisBackend:
    return redis_backends()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "virtual_time: the test moves the guards' time by hand, so it runs on memory only "
        "(a shared store's guards read the store's clock)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test on virtual time has no Redis variant (not a skip: there is nothing to run).
    kept, dropped = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        on_redis = spec is not None and spec.params.get("on_both_backends") == "redis"
        (dropped if on_redis and item.get_closest_marker("virtual_time") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=["memory", "redis"])
def on_both_backends(request: pytest.FixtureRequest) -> Iterator[str]:
    """Whole-call tests run on each backend: every client the test builds without naming a
    backend gets a fresh one of this kind (``support.GUARD_STATE``)."""
    if request.param == "memory":
        yield "memory"
        return
    backends: Callable[[], RedisBackend] = request.getfixturevalue("redis_backends")
    token = GUARD_STATE.set(backends)
    try:
        yield "redis"
    finally:
        GUARD_STATE.reset(token)
