"""``[budgets.NAME]`` and ``[state]``: read into ``SpendBudget`` and ``StateConfig`` values, every
rule reported under its key, all at once, in the base and in each environment's overlay."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from guardedllm import defaults
from guardedllm.errors import ConfigError
from guardedllm.guards import SpendBudget
from guardedllm.registry import Registry, StateConfig

from ._configs import load_problems

DAILY = {"scope": "global", "window": "day", "limit_usd": 50}
STATE = {"url": "redis://redis.internal:6379/0"}


def only(problems: dict[str, list[str]], key: str) -> str:
    """The one problem at ``key``, which must be the only key with problems."""
    assert list(problems) == [key], problems
    (message,) = problems[key]
    return message


# --------------------------------------------------------------------------- budgets


def test_budgets_become_spend_budgets_named_by_their_table(data: dict[str, Any]) -> None:
    data["budgets"] = {
        "daily": DAILY,
        "support": {"scope": "route", "window": "hour", "limit_usd": 2.5, "match": "support"},
        "tenant": {"scope": "key", "window": "month", "limit_usd": 0.5},
        "acme": {"scope": "key", "window": "minute", "limit_usd": 1, "match": "acme-corp"},
    }
    registry = Registry.from_dict(data)
    assert registry.budgets == (
        SpendBudget(name="daily", scope="global", window="day", limit_usd=50.0),
        SpendBudget(name="support", scope="route", window="hour", limit_usd=2.5, match="support"),
        SpendBudget(name="tenant", scope="key", window="month", limit_usd=0.5),
        SpendBudget(name="acme", scope="key", window="minute", limit_usd=1.0, match="acme-corp"),
    )
    assert Registry.from_dict({}).budgets == ()


@pytest.mark.parametrize(
    "name", ["fast", "support", "gpt-4o-mini"], ids=["alias", "route", "model"]
)
def test_a_route_budget_may_match_any_name_callers_pass_as_model(
    data: dict[str, Any], name: str
) -> None:
    data["budgets"] = {"b": {"scope": "route", "window": "day", "limit_usd": 1, "match": name}}
    assert Registry.from_dict(data).budgets[0].match == name


@pytest.mark.parametrize(
    ("field", "value", "key", "says"),
    [
        ("scope", "globl", "scope", "unknown scope (did you mean 'global'?)"),
        ("scope", 1, "scope", "must be a string"),
        ("window", "daily", "window", "unknown window (did you mean 'day'?)"),
        ("window", "week", "window", "use one of minute, hour, day, month"),
        ("limit_usd", 0, "limit_usd", "must be > 0 and at most 9,000,000, got 0"),
        ("limit_usd", -5, "limit_usd", "must be > 0"),
        ("limit_usd", 9_000_001, "limit_usd", "at most 9,000,000"),
        ("limit_usd", "50", "limit_usd", "must be a number, got a string"),
        ("limit_usd", float("nan"), "limit_usd", "must be a finite number"),
        ("match", "support", "match", "only route and key budgets take it"),
        ("match", "", "match", "must not be empty"),
        ("limt_usd", 5, "limt_usd", "unknown key (did you mean 'limit_usd'?)"),
    ],
)
def test_each_budget_rule_is_reported_under_its_key(
    data: dict[str, Any], field: str, value: Any, key: str, says: str
) -> None:
    data["budgets"] = {"daily": {**DAILY, field: value}}
    assert says in only(load_problems(data), f"budgets.daily.{key}")


@pytest.mark.parametrize("field", ["scope", "window", "limit_usd"])
def test_a_budget_missing_a_field_says_how_to_add_it(data: dict[str, Any], field: str) -> None:
    data["budgets"] = {"daily": {k: v for k, v in DAILY.items() if k != field}}
    message = only(load_problems(data), f"budgets.daily.{field}")
    assert message.startswith("missing; every budget needs it: add ")


def test_a_route_budget_must_match_a_name_callers_use(data: dict[str, Any]) -> None:
    data["budgets"] = {"b": {"scope": "route", "window": "day", "limit_usd": 1, "match": "suport"}}
    message = only(load_problems(data), "budgets.b.match")
    assert "names 'suport', which is not a route, alias or model" in message
    assert "did you mean 'support'?" in message


def test_a_key_budget_may_match_any_key(data: dict[str, Any]) -> None:
    data["budgets"] = {"b": {"scope": "key", "window": "day", "limit_usd": 1, "match": "suport"}}
    assert Registry.from_dict(data).budgets[0].match == "suport"


@pytest.mark.parametrize(
    ("budgets", "key", "says"),
    [
        ({"daily": 5}, "budgets.daily", "must be a table"),
        ({"": DAILY}, 'budgets.""', "has an empty name"),
    ],
)
def test_a_budget_table_that_cannot_be_read(
    data: dict[str, Any], budgets: dict[str, Any], key: str, says: str
) -> None:
    data["budgets"] = budgets
    assert says in only(load_problems(data), key)


def test_every_budget_problem_is_reported_at_once(data: dict[str, Any]) -> None:
    data["budgets"] = {
        "a": {"scope": "everything", "window": "day", "limit_usd": 1},
        "b": {"scope": "global", "window": "fortnight", "limit_usd": -1, "match": "x"},
        "c": {"scope": "route", "window": "day", "limit_usd": 1, "match": "nope", "extra": 1},
    }
    assert sorted(load_problems(data)) == [
        "budgets.a.scope",
        "budgets.b.limit_usd",
        "budgets.b.match",
        "budgets.b.window",
        "budgets.c.extra",
        "budgets.c.match",
    ]


# --------------------------------------------------------------------------- budgets per env


def test_an_environment_changes_a_budget_the_base_declares(data: dict[str, Any]) -> None:
    data["budgets"] = {"daily": DAILY}
    data["env"]["staging"]["budgets"] = {"daily": {"limit_usd": 5}}
    assert Registry.from_dict(data).budgets[0].limit_usd == 50.0
    assert Registry.from_dict(data, env="staging").budgets[0].limit_usd == 5.0
    assert Registry.from_dict(data, env="prod").budgets[0].limit_usd == 50.0


def test_an_environment_cannot_declare_a_budget_the_base_lacks(data: dict[str, Any]) -> None:
    data["budgets"] = {"daily": DAILY}
    data["env"]["prod"]["budgets"] = {"dayly": {"limit_usd": 5}}
    message = only(load_problems(data), "env.prod.budgets.dayly")
    assert "overrides no [budgets.dayly] of the base config (did you mean 'daily'?)" in message


def test_an_overlaid_budget_problem_is_keyed_under_the_overlay(data: dict[str, Any]) -> None:
    data["budgets"] = {"daily": DAILY}
    data["env"]["prod"]["budgets"] = {"daily": {"limit_usd": 0, "widow": "hour"}}
    problems = load_problems(data)
    assert sorted(problems) == ["env.prod.budgets.daily.limit_usd", "env.prod.budgets.daily.widow"]


def test_a_route_budget_matching_an_alias_only_one_environment_has(data: dict[str, Any]) -> None:
    # "summarize" is an alias in staging and prod only: the base cannot count calls by it.
    data["budgets"] = {"s": {"scope": "route", "window": "day", "limit_usd": 1}}
    data["env"]["staging"]["budgets"] = {"s": {"match": "summarize"}}
    assert Registry.from_dict(data, env="staging").budgets[0].match == "summarize"
    data["budgets"]["s"]["match"] = "summarize"
    assert "not a route, alias or model" in only(load_problems(data), "budgets.s.match")


def test_loading_budgets_does_not_load_the_guards_until_a_config_declares_one() -> None:
    code = (
        "import sys, guardedllm\n"
        "guardedllm.Registry.from_dict({'state': {'url': 'redis://h:6379/0'}})\n"
        "assert 'guardedllm.guards' not in sys.modules\n"
        "assert 'redis' not in sys.modules\n"
        "guardedllm.Registry.from_dict({'budgets': {'d': {'scope': 'global', 'window': 'day', "
        "'limit_usd': 1}}})\n"
        "assert 'guardedllm.guards' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- state


def test_state_is_read_into_a_state_config(data: dict[str, Any]) -> None:
    assert Registry.from_dict(data).state is None
    data["state"] = {
        "url": "rediss://redis.internal:6380/2",
        "password_env": "REDIS_PASSWORD",
        "key_prefix": "support-bot:",
        "timeout_s": 0.25,
        "on_error": "refuse",
    }
    assert Registry.from_dict(data).state == StateConfig(
        url="rediss://redis.internal:6380/2",
        password_env="REDIS_PASSWORD",
        key_prefix="support-bot:",
        timeout_s=0.25,
        on_error="refuse",
    )


def test_state_defaults(data: dict[str, Any]) -> None:
    data["state"] = {"url": "unix:///run/redis/redis.sock?db=1"}
    state = Registry.from_dict(data).state
    assert state == StateConfig(url="unix:///run/redis/redis.sock?db=1")
    assert state is not None
    assert (state.password_env, state.key_prefix) == (None, defaults.STATE_KEY_PREFIX)
    assert (state.timeout_s, state.on_error) == (defaults.STATE_TIMEOUT_S, "local")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("url", "http://redis.internal:6379", "must start with redis://, rediss:// or unix://"),
        ("url", "redis:redis.internal", "must start with redis://, rediss:// or unix://"),
        ("url", "redis://redis.internal:port/0", "is not a valid URL"),
        ("url", "redis://redis.internal:6379/zero", "names a database that is no number"),
        ("url", "redis://redis.internal:6379?db=x", "names a database that is no number"),
        ("url", "unix://", "names no socket"),
        ("url", 6379, "must be a string"),
        ("password_env", "REDIS PASSWORD", "must be the name of an environment variable"),
        ("password_env", "9LIVES", "must be the name of an environment variable"),
        ("key_prefix", "", "must not be empty"),
        ("timeout_s", 0, "must be > 0"),
        ("timeout_s", 30, "must be at most 5 seconds, got 30"),
        ("timeout_s", "1", "must be a number"),
        ("on_error", "fail", 'must be "local"'),
        ("on_error", "refuse-calls", "(did you mean 'refuse'?)"),
        ("url_", "redis://h", "unknown key (did you mean 'url'?)"),
    ],
)
def test_each_state_rule_is_reported_under_its_key(
    data: dict[str, Any], field: str, value: Any, says: str
) -> None:
    data["state"] = {**STATE, field: value}
    assert says in only(load_problems(data), f"state.{field}")


def test_state_needs_a_url(data: dict[str, Any]) -> None:
    data["state"] = {"key_prefix": "app:"}
    assert "add url = " in only(load_problems(data), "state.url")


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2-secret@redis.internal:6379/0",
        "redis://app:hunter2-secret@redis.internal:6379/0",
        "rediss://redis.internal:6379/0?password=hunter2-secret",
    ],
)
def test_a_password_in_the_url_is_refused_without_quoting_it(
    data: dict[str, Any], url: str
) -> None:
    data["state"] = {"url": url}
    with pytest.raises(ConfigError) as caught:
        Registry.from_dict(data)
    assert [p.key for p in caught.value.problems] == ["state.url"]
    assert "put it in an environment variable and name that variable in password_env" in str(
        caught.value
    )
    assert "hunter2" not in str(caught.value)


def test_a_password_in_password_env_is_refused_without_quoting_it(data: dict[str, Any]) -> None:
    data["state"] = {**STATE, "password_env": "sk-live-0123456789abcdef0123456789abcdef"}
    with pytest.raises(ConfigError) as caught:
        Registry.from_dict(data)
    assert [p.key for p in caught.value.problems] == ["state.password_env"]
    assert "looks like a password itself" in str(caught.value)
    assert "0123456789abcdef" not in str(caught.value)


def test_every_state_problem_is_reported_at_once(data: dict[str, Any]) -> None:
    data["state"] = {
        "url": "http://:pw@host/x",
        "password_env": "1X",
        "timeout_s": -1,
        "on_error": "explode",
        "prefix": "a:",
    }
    problems = load_problems(data)
    assert sorted(problems) == [
        "state.on_error",
        "state.password_env",
        "state.prefix",
        "state.timeout_s",
        "state.url",
    ]
    assert len(problems["state.url"]) == 2  # the scheme and the password


def test_state_that_is_not_a_table(data: dict[str, Any]) -> None:
    data["state"] = "redis://redis.internal:6379/0"
    assert "must be a table" in only(load_problems(data), "state")


# --------------------------------------------------------------------------- state per env


def test_an_environment_overlays_state_fields(data: dict[str, Any]) -> None:
    data["state"] = STATE
    data["env"]["prod"]["state"] = {"on_error": "refuse", "key_prefix": "prod:"}
    prod = Registry.from_dict(data, env="prod").state
    assert prod == StateConfig(url=STATE["url"], on_error="refuse", key_prefix="prod:")
    assert Registry.from_dict(data, env="staging").state == StateConfig(url=STATE["url"])


def test_an_environment_may_have_a_store_the_base_does_not(data: dict[str, Any]) -> None:
    data["env"]["prod"]["state"] = STATE
    assert Registry.from_dict(data, env="prod").state == StateConfig(url=STATE["url"])
    assert Registry.from_dict(data).state is None
    data["env"]["staging"]["state"] = {"on_error": "refuse"}  # no url of its own, none in base
    assert "add url = " in only(load_problems(data), "env.staging.state.url")


def test_an_overlaid_state_problem_is_keyed_under_the_overlay(data: dict[str, Any]) -> None:
    data["state"] = STATE
    data["env"]["prod"]["state"] = {"timeout_s": 60, "url": "redis://:pw-123456@h:6379/0"}
    problems = load_problems(data)
    assert sorted(problems) == ["env.prod.state.timeout_s", "env.prod.state.url"]
    assert "pw-123456" not in str(problems)


# --------------------------------------------------------------------------- StateConfig


def test_a_state_config_built_in_code_is_checked_too() -> None:
    with pytest.raises(ValueError, match="password") as caught:
        StateConfig(url="redis://:hunter2-secret@h:6379/0")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match="at most 5"):
        StateConfig(url="redis://h:6379/0", timeout_s=6)
    with pytest.raises(ValueError, match="on_error"):
        StateConfig(url="redis://h:6379/0", on_error="panic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="REDIS_PASSWORD"):
        StateConfig(url="redis://h:6379/0", password_env="hunter2 secret")
