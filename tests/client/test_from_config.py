"""``Client.from_config`` and ``AsyncClient.from_config`` with the config's ``[budgets.NAME]``
and ``[state]``, through every driver, against FakeProvider (and a real redis-server for the
shared store): a budget written in TOML refuses a call past its limit as one passed in code
does (also for a client built on the config's ``Registry``), and a ``[state]`` store is where
the client keeps its guards' state."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest

from guardedllm import AsyncClient, Client, Registry
from guardedllm.errors import BudgetExceededError, ConfigError, StateError
from guardedllm.guards import SpendBudget
from guardedllm.state import MemoryBackend
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from redis_server import RedisServer
from session import Session, open_session
from support import ENVIRON, config_text

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
MAX_TOKENS = 100
OPENAI_ID = "gpt-4o-mini-2024-07-18"


@contextmanager
def config_session(driver: str, path: Path, **client_kwargs: Any) -> Iterator[Session]:
    """A ``Session`` over a client made by ``from_config(path)`` of ``driver``, closed on exit."""
    client_kwargs.setdefault("environ", ENVIRON)
    if driver == "sync":
        with Client.from_config(path, **client_kwargs) as client:
            yield Session(driver, client, None)
        return
    with ExitStack() as stack:
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal(backend=driver))

        def build() -> AsyncClient:  # in the loop: the transport belongs to it
            return AsyncClient.from_config(path, **client_kwargs)

        aclient: AsyncClient = portal.call(build)
        try:
            yield Session(driver, aclient, portal)
        finally:
            portal.call(aclient.aclose)


def write_config(tmp_path: Path, fake: FakeProvider, extra: str) -> Path:
    path = tmp_path / "guardedllm.toml"
    path.write_text(config_text(fake) + extra, encoding="utf-8")
    return path


def bill_every_call_its_worst_case(fake: FakeProvider, path: Path) -> float:
    """Make the fake report exactly the tokens a call reserves; that worst case, in USD."""
    with Client.from_config(path, environ=ENVIRON, state=MemoryBackend()) as client:
        estimate = client.estimate(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
    fake.script(
        model=OPENAI_ID,
        usage={"prompt_tokens": estimate.input_tokens, "completion_tokens": MAX_TOKENS},
    )
    return estimate.cost_usd_max


def daily_budget(limit_usd: float) -> str:
    return f'\n[budgets.daily]\nscope = "global"\nwindow = "day"\nlimit_usd = {limit_usd!r}\n'


# --------------------------------------------------------------------------- budgets


def test_a_budget_from_the_config_refuses_a_call_past_its_limit(
    driver: str, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    path = write_config(tmp_path, fake_provider, daily_budget(1.0))
    worst = bill_every_call_its_worst_case(fake_provider, path)
    # Room for two calls billed their worst case, not three.
    path.write_text(config_text(fake_provider) + daily_budget(2.5 * worst), encoding="utf-8")

    with config_session(driver, path) as session:
        results = [
            session.outcome(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
            for _ in range(3)
        ]
        (status,) = session.spend()

    assert [type(r) for r in results] == [ChatCompletion, ChatCompletion, BudgetExceededError]
    refusal = results[2]
    assert isinstance(refusal, BudgetExceededError)
    assert "spend budget 'daily' would be exceeded" in str(refusal)
    assert refusal.limit_usd == pytest.approx(2.5 * worst)
    assert len(fake_provider.requests) == 2  # the refused call sent nothing
    assert (status.name, status.reserved_usd) == ("daily", 0)
    assert status.spent_usd == pytest.approx(2 * worst)


def test_budgets_passed_in_code_are_added_to_the_config_s(
    driver: str, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    path = write_config(tmp_path, fake_provider, daily_budget(100.0))
    in_code = SpendBudget(name="support", scope="route", window="hour", limit_usd=1.0)
    with config_session(driver, path, budgets=[in_code]) as session:
        session.create(model="support", messages=MESSAGES, max_tokens=MAX_TOKENS)
        statuses = session.spend(routes=["support"])
    assert [(s.name, s.limit_usd) for s in statuses] == [("daily", 100.0), ("support", 1.0)]
    assert all(s.spent_usd > 0 for s in statuses)


def test_a_client_of_a_registry_from_the_config_applies_its_budgets_too(
    driver: str, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    path = write_config(tmp_path, fake_provider, daily_budget(1e-9))  # less than any call
    with open_session(driver, Registry.from_toml(path)) as session:
        refused = session.outcome(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
    assert isinstance(refused, BudgetExceededError)
    assert fake_provider.requests == []


@pytest.mark.parametrize("client_class", [Client, AsyncClient], ids=["Client", "AsyncClient"])
def test_a_budget_name_used_in_the_config_and_in_code_is_refused(
    tmp_path: Path, fake_provider: FakeProvider, client_class: type[Client | AsyncClient]
) -> None:
    path = write_config(tmp_path, fake_provider, daily_budget(100.0))
    clash = SpendBudget(name="daily", scope="global", window="day", limit_usd=1.0)
    with pytest.raises(ConfigError) as caught:
        client_class.from_config(path, budgets=[clash], environ=ENVIRON)
    assert [p.key for p in caught.value.problems] == ["budgets.daily"]
    assert "also the name of a budget passed in code" in str(caught.value)
    assert caught.value.source == str(path)


def test_an_environment_s_budget_applies_in_that_environment(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    overlay = "\n[env.staging.budgets.daily]\nlimit_usd = 0.5\n[env.prod.aliases]\n"
    path = write_config(tmp_path, fake_provider, daily_budget(100.0) + overlay)
    for env, limit in [(None, 100.0), ("staging", 0.5), ("prod", 100.0)]:
        with Client.from_config(path, env=env, environ=ENVIRON) as client:
            assert [s.limit_usd for s in client.spend()] == [limit]


# --------------------------------------------------------------------------- the shared store


def state_table(server: RedisServer, prefix: str, extra: str = "") -> str:
    return f'\n[state]\nurl = "{server.url}"\nkey_prefix = "{prefix}"\n{extra}'


def test_clients_from_one_config_share_a_budget_in_its_store(
    driver: str, tmp_path: Path, fake_provider: FakeProvider, redis_server: RedisServer
) -> None:
    prefix = f"from-config-{driver}:"
    path = write_config(tmp_path, fake_provider, daily_budget(1.0))
    worst = bill_every_call_its_worst_case(fake_provider, path)
    fleet = daily_budget(1.5 * worst) + state_table(redis_server, prefix)
    path.write_text(config_text(fake_provider) + fleet, encoding="utf-8")

    # Two clients, as two processes of a service would have: the first one's call spends what
    # the budget allows, so the second one's is refused.
    with config_session(driver, path) as first, config_session(driver, path) as second:
        answered = first.outcome(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
        refused = second.outcome(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
        assert first.client.registry.state is not None
        assert first.client.registry.state.on_error == "local"

    assert isinstance(answered, ChatCompletion)
    assert isinstance(refused, BudgetExceededError)
    with redis_server.client() as redis:
        assert redis.keys(f"{prefix}counter:*"), "the spend counters are in Redis"


def test_a_state_backend_passed_in_code_replaces_the_config_s_store(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    # Nothing listens at this address: a client that opened it would fail its budgeted call.
    unreachable = '\n[state]\nurl = "redis://127.0.0.1:1/0"\ntimeout_s = 0.2\n'
    path = write_config(tmp_path, fake_provider, daily_budget(100.0) + unreachable)
    with Client.from_config(path, environ=ENVIRON, state=MemoryBackend()) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        assert client.spend()[0].spent_usd > 0


@pytest.mark.parametrize("on_error", ["local", "refuse"])
def test_the_config_s_on_error_decides_a_call_when_its_store_is_down(
    driver: str, tmp_path: Path, fake_provider: FakeProvider, on_error: str
) -> None:
    # Nothing listens at this address: the store is down from the first call.
    down = f'\n[state]\nurl = "redis://127.0.0.1:1/0"\ntimeout_s = 0.2\non_error = "{on_error}"\n'
    path = write_config(tmp_path, fake_provider, daily_budget(100.0) + down)
    with config_session(driver, path) as session:
        ended = session.outcome(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    if on_error == "local":  # carried on with this process's own state
        assert isinstance(ended, ChatCompletion)
        assert len(fake_provider.requests) == 1
    else:  # no spend goes untracked: refused, nothing sent
        assert isinstance(ended, StateError)
        assert fake_provider.requests == []


def test_a_missing_password_variable_is_a_config_error(
    tmp_path: Path, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_REDIS_PASSWORD", raising=False)
    extra = '\n[state]\nurl = "redis://127.0.0.1:6379/0"\npassword_env = "NO_SUCH_REDIS_PASSWORD"\n'
    path = write_config(tmp_path, fake_provider, extra)
    with pytest.raises(ConfigError) as caught:
        AsyncClient.from_config(path, environ=ENVIRON)
    assert [p.key for p in caught.value.problems] == ["state.password_env"]
    assert "'NO_SUCH_REDIS_PASSWORD' is not set" in str(caught.value)
    assert caught.value.source == str(path)


def test_without_redis_py_a_state_table_says_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "guardedllm.toml"
    path.write_text('[state]\nurl = "redis://127.0.0.1:6379/0"\n', encoding="utf-8")
    code = (
        "import sys\n"
        "sys.modules['redis'] = None  # as if guardedllm[redis] were not installed\n"
        "import guardedllm\n"
        "guardedllm.Registry.from_toml(sys.argv[1])  # the config itself is valid\n"
        "try:\n"
        "    guardedllm.Client.from_config(sys.argv[1])\n"
        "except guardedllm.errors.ConfigError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "state: needs redis-py, which is not installed" in done.stdout
    assert "pip install 'guardedllm[redis]'" in done.stdout
