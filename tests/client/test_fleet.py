"""A fleet: several Python processes, each with its own Client, sharing guard state on one
Redis and calling one FakeProvider, as the replicas of a service do. What one process's guards
decide holds for all: a global budget, a breaker, a 404 mark, an rpm limit; and a store that
dies and comes back mid-run costs no call. Bounded in processes, calls and time."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guardedllm import Client, Registry, defaults
from guardedllm.testing import FakeProvider
from redis_server import RedisServer
from support import ENVIRON, config_text
from workers import run_together

PROCESSES = 3
MESSAGES = [{"role": "user", "content": "Hello there"}]
MAX_TOKENS = 50
OPENAI_ID = "gpt-4o-mini-2024-07-18"
CLAUDE_ID = "claude-3-5-haiku-20241022"

# A worker: its own Client on the shared store, ready once built (the tokenizer loaded), then
# at the start signal (a file) ``calls`` calls in turn to each model named (or, with
# ``seconds``, calls until then), printing one JSON line: each call's outcome and cost.
WORKER = """
import json, os, sys, time
from guardedllm import Client, Policy, Registry
from guardedllm.errors import GuardedLLMError
from guardedllm.guards import BreakerConfig, SpendBudget
from guardedllm.state import RedisBackend

config, url, prefix, go, spec = sys.argv[1:6]
spec = json.loads(spec)
store = RedisBackend.from_url(url, key_prefix=prefix, timeout_s=0.5)
state = store
if "cool_off_s" in spec:  # the client's own wrapper, trying the store again sooner
    from guardedllm.state import FailoverBackend
    state = FailoverBackend(store, cool_off_s=spec["cool_off_s"])
limit = spec.get("limit_usd")
budgets = [SpendBudget(name="fleet", scope="global", window="day", limit_usd=limit or 1.0)]
client = Client(
    Registry.from_toml_text(open(config).read()),
    environ=spec["environ"],
    state=state,
    budgets=budgets if limit else [],
    breaker=BreakerConfig(minimum_calls=2, failure_rate_threshold=0.5, open_s=60.0),
    policy=Policy(deadline_s=spec.get("deadline_s", 10.0)),
    random=lambda: 0.0,
)
print("ready", flush=True)
deadline = time.monotonic() + 30.0
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.002)
stop = time.monotonic() + spec.get("seconds", 0.0)
results = []
for number in range(spec["calls"]):
    if spec.get("seconds") and time.monotonic() > stop:
        break
    for model in spec["models"]:
        try:
            answer = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hello there"}],
                max_tokens=spec["max_tokens"],
            )
        except GuardedLLMError as error:
            results.append({"model": model, "outcome": type(error).__name__})
        else:
            results.append({"model": model, "outcome": "ok", "cost": answer.guard.cost_usd})
    time.sleep(spec.get("pause_s", 0.0))
client.close()
store.close()
print(json.dumps(results), flush=True)
"""

_PREFIXES = itertools.count()


class Fleet:
    """Starts workers against one store and one config, and collects what they did."""

    def __init__(self, directory: Path, config: str, url: str) -> None:
        self.directory = directory
        self.script = directory / "worker.py"
        self.script.write_text(WORKER)
        self.config = directory / "config.toml"
        self.config.write_text(config)
        self.url = url
        self.prefix = f"fleet{next(_PREFIXES)}:"
        self._runs = itertools.count()

    def run(
        self, processes: int, *, during: Callable[[], None] | None = None, **spec: Any
    ) -> list[list[dict[str, Any]]]:
        """Each worker's results, all started together (``during`` runs once they are)."""
        go = self.directory / f"go{next(self._runs)}"
        spec = {"environ": ENVIRON, "max_tokens": MAX_TOKENS, **spec}
        argv = [sys.executable, str(self.script), str(self.config), self.url, self.prefix]
        return run_together([[*argv, str(go), json.dumps(spec)]] * processes, go, during=during)


@pytest.fixture
def fleet(tmp_path: Path, fake_provider: FakeProvider, redis_server: RedisServer) -> Fleet:
    return Fleet(tmp_path, config_text(fake_provider), redis_server.url)


def outcomes(results: list[list[dict[str, Any]]], model: str | None = None) -> list[str]:
    return [r["outcome"] for worker in results for r in worker if model in (None, r["model"])]


def test_a_global_budget_is_never_overspent_by_the_fleet(
    fleet: Fleet, fake_provider: FakeProvider
) -> None:
    # Each call bills exactly its worst case, and the budget holds five and a half of them:
    # five calls answer in all, however the processes race (alone, each would answer five).
    with Client(Registry.from_toml_text(fleet.config.read_text()), environ=ENVIRON) as client:
        estimate = client.estimate(model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS)
    fake_provider.script(
        model=OPENAI_ID,
        usage={"prompt_tokens": estimate.input_tokens, "completion_tokens": MAX_TOKENS},
    )
    limit = 5.5 * estimate.cost_usd_max
    results = fleet.run(PROCESSES, models=["chat"], calls=4, limit_usd=limit)

    answered = [r for worker in results for r in worker if r["outcome"] == "ok"]
    assert len(answered) == 5
    assert sum(r["cost"] for r in answered) <= limit
    assert outcomes(results).count("BudgetExceededError") == PROCESSES * 4 - 5
    assert len(fake_provider.requests) == 5


def test_a_breaker_and_a_404_mark_set_by_one_process_hold_the_others_back(
    fleet: Fleet, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=500)  # always: the breaker opens
    fake_provider.script(model=CLAUDE_ID, not_found=True)  # always: marked unavailable
    strikes = defaults.UNAVAILABLE_STRIKES
    first = fleet.run(1, models=["gpt-4o-mini", "claude-haiku"], calls=strikes + 1)
    sent = len(fake_provider.requests)
    others = fleet.run(PROCESSES - 1, models=["gpt-4o-mini", "claude-haiku"], calls=2)

    # The first process saw the failures (two 500s a call, then its breaker open; 404s, the
    # last of which marks the deployment: nothing else answered from it).
    assert (
        outcomes(first, "gpt-4o-mini") == ["AllRoutesFailedError"] + ["CircuitOpenError"] * strikes
    )
    assert outcomes(first, "claude-haiku") == ["AllRoutesFailedError"] * strikes + [
        "ModelNotFoundError"
    ]
    # The others never sent to either: the open breaker and the mark are the fleet's.
    assert set(outcomes(others, "gpt-4o-mini")) == {"CircuitOpenError"}
    assert set(outcomes(others, "claude-haiku")) == {"ModelNotFoundError"}
    assert len(fake_provider.requests) == sent


def test_a_shared_rpm_limit_holds_across_the_fleet(
    tmp_path: Path, fake_provider: FakeProvider, redis_server: RedisServer
) -> None:
    config = config_text(fake_provider).replace(
        'model = "gpt-4o-mini-2024-07-18"\n', 'model = "gpt-4o-mini-2024-07-18"\nrpm = 6\n', 1
    )
    fleet = Fleet(tmp_path, config, redis_server.url)
    # 6 a minute: the bucket holds six; the next slot is ten seconds away, past the deadline.
    results = fleet.run(PROCESSES, models=["gpt-4o-mini"], calls=4, deadline_s=2.0)

    answered = outcomes(results).count("ok")
    assert 6 <= answered <= 7  # six, and one more only if the run outlasted ten seconds
    assert outcomes(results).count("RateLimitedError") == PROCESSES * 4 - answered
    assert len(fake_provider.requests) == answered


def test_a_store_killed_and_restarted_mid_run_loses_no_call(
    tmp_path: Path,
    fake_provider: FakeProvider,
    start_redis_server: Callable[..., RedisServer],
) -> None:
    server = start_redis_server()
    fleet = Fleet(tmp_path, config_text(fake_provider), server.url)

    def outage() -> None:
        time.sleep(0.5)
        server.kill()
        time.sleep(1.0)
        server.start()

    results = fleet.run(
        PROCESSES, models=["chat"], calls=300, seconds=3.0, pause_s=0.01, cool_off_s=0.3,
        during=outage,
    )  # fmt: skip

    assert all(len(worker) > 20 for worker in results)  # each ran through the outage
    assert set(outcomes(results)) == {"ok"}
    with server.client() as client:
        assert client.keys(f"{fleet.prefix}*")  # shared again once it came back
