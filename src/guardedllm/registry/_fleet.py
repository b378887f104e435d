"""Reading the tables that concern every process of a service: ``[budgets.NAME]`` (spend
budgets, as ``guardedllm.guards.SpendBudget`` values) and ``[state]`` (where guard state is
shared, as a ``StateConfig``).

Neither loads what it configures: a budget's values are checked here and the guards module is
imported only when a config declares one (``import guardedllm`` stays light), and ``[state]`` is
checked with the pure URL rules of ``guardedllm.state._url``, without redis-py, which may not be
installed where ``guardedllm check`` runs. The client opens the store (``from_config``).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING, get_args

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError
from guardedllm.registry._check import (
    Field,
    Problems,
    Table,
    check_positive,
    did_you_mean,
    read_fields,
)
from guardedllm.registry._tables import ENV_VAR_NAME, looks_like_key
from guardedllm.state.failover import ON_ERROR, OnError

if TYPE_CHECKING:
    from guardedllm.guards.spend import SpendBudget

__all__ = ["ON_ERROR", "StateConfig", "read_budget", "read_state"]


def _url_problem(url: str) -> str | None:
    from guardedllm.state._url import url_problems  # guardedllm.state loads with a [state]

    return "; ".join(url_problems(url)) or None


def _check_url(_: object, __: attrs.Attribute[str], value: str) -> None:
    wrong = _url_problem(value)
    if wrong is not None:
        raise ArgumentError(f"StateConfig.url {wrong}")  # never the URL: it may hold a password


def _check_password_env(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and (not ENV_VAR_NAME.fullmatch(value) or looks_like_key(value)):
        raise ArgumentError(
            "StateConfig.password_env must be the name of an environment variable, like "
            "REDIS_PASSWORD, never the password"
        )


def _check_timeout(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and 0 < value <= defaults.STATE_MAX_TIMEOUT_S):
        raise ArgumentError(
            f"StateConfig.timeout_s must be > 0 and at most {defaults.STATE_MAX_TIMEOUT_S:g} "
            f"seconds; got {value!r}"
        )


@attrs.frozen(kw_only=True)
class StateConfig:
    """A ``[state]`` table: the shared store every process of a service keeps guard state in.

    ``url`` is ``redis://``, ``rediss://`` or ``unix://``, without a password: the password is
    read from the environment variable ``password_env`` names when the store is opened.
    ``timeout_s`` bounds each state operation; ``on_error`` says what a guard does when the
    store fails: ``"local"`` carries on with this process's own state, ``"refuse"`` refuses
    calls whose spend it cannot count.
    """

    url: str = attrs.field(validator=_check_url)
    password_env: str | None = attrs.field(default=None, validator=_check_password_env)
    key_prefix: str = defaults.STATE_KEY_PREFIX
    timeout_s: float = attrs.field(
        default=defaults.STATE_TIMEOUT_S, converter=float, validator=_check_timeout
    )
    on_error: OnError = attrs.field(default="local", validator=attrs.validators.in_(ON_ERROR))


STATE_FIELDS = {
    "url": Field(
        type="str",
        required=True,
        hint='add url = "redis://HOST:6379/0" (or rediss://, or unix:///path/redis.sock)',
    ),
    "password_env": Field(type="str"),
    "key_prefix": Field(type="str"),
    "timeout_s": Field(type="number"),
    "on_error": Field(type="str"),
}

_NAME_THE_VARIABLE = (
    "put the password in an environment variable and write its name here, like "
    'password_env = "REDIS_PASSWORD"'
)


def read_state(table: Table, problems: Problems) -> StateConfig | None:
    """A ``[state]`` table; its URL is checked without quoting it (it may hold a password)."""
    mine = Problems()
    read = read_fields(table, STATE_FIELDS, "[state] table", mine)
    url = read.get("url")
    if url is not None:
        from guardedllm.state._url import url_problems

        for wrong in url_problems(url):
            mine.add(table.key_of("url"), wrong)
    password_env = read.get("password_env")
    if password_env is not None and looks_like_key(password_env):
        mine.add(
            table.key_of("password_env"), f"looks like a password itself: {_NAME_THE_VARIABLE}"
        )
    elif password_env is not None and not ENV_VAR_NAME.fullmatch(password_env):
        mine.add(
            table.key_of("password_env"),
            "must be the name of an environment variable (letters, digits and underscores, not "
            f"starting with a digit): {_NAME_THE_VARIABLE}",
        )
    timeout = read.get("timeout_s")
    rule = "seconds one state operation may take"
    check_positive(read, table, ["timeout_s"], rule, mine)
    if timeout is not None and timeout > defaults.STATE_MAX_TIMEOUT_S:
        mine.add(
            table.key_of("timeout_s"),
            f"must be at most {defaults.STATE_MAX_TIMEOUT_S:g} seconds, got {timeout:g}: {rule}; "
            "a store slower than that is as good as down for a call (see on_error)",
        )
    on_error = read.get("on_error")
    if on_error is not None and on_error not in ON_ERROR:
        mine.add(
            table.key_of("on_error"),
            f'must be "local" (carry on with per-process state) or "refuse" (refuse calls '
            f"whose spend cannot be counted){did_you_mean(on_error, ON_ERROR)}",
        )
    problems.extend(mine)
    if mine:
        return None
    return StateConfig(**read)


BUDGET_FIELDS = {
    "scope": Field(type="str", required=True, hint='add scope = "global" (or "route", or "key")'),
    "window": Field(
        type="str", required=True, hint='add window = "day" (or "minute", "hour", "month")'
    ),
    "limit_usd": Field(
        type="number", required=True, hint="add limit_usd = N, the most USD per window"
    ),
    "match": Field(type="str"),
}


def read_budget(
    name: str, table: Table, callable_names: Collection[str], problems: Problems
) -> SpendBudget | None:
    """A spend budget named ``name``; a ``route`` budget's ``match`` must be one of
    ``callable_names`` (the models, aliases and routes of the view), as callers pass it."""
    from guardedllm.guards.spend import MAX_BUDGET_USD, Scope, SpendBudget, Window

    scopes, windows = get_args(Scope), get_args(Window)
    mine = Problems()
    if not name.strip():
        mine.add(table.key, "has an empty name: name the budget, like [budgets.daily]")
    read = read_fields(table, BUDGET_FIELDS, "budget", mine)
    scope, window = read.get("scope"), read.get("window")
    if scope is not None and scope not in scopes:
        mine.add(
            table.key_of("scope"),
            f"unknown scope{did_you_mean(scope, scopes)}: use global (every call), route (each "
            "name callers pass as model) or key (each Policy(budget_key=...))",
        )
    if window is not None and window not in windows:
        mine.add(
            table.key_of("window"),
            f"unknown window{did_you_mean(window, windows)}: use one of {', '.join(windows)}",
        )
    limit = read.get("limit_usd")
    if limit is not None and not 0 < limit <= MAX_BUDGET_USD:
        mine.add(
            table.key_of("limit_usd"),
            f"must be > 0 and at most {MAX_BUDGET_USD:,.0f}, got {limit:g}: the most this "
            "budget lets calls spend per window, in USD",
        )
    match = read.get("match")
    if match is not None and scope == "global":
        mine.add(
            table.key_of("match"),
            "only route and key budgets take it (a global budget covers every call): remove "
            'it, or set scope = "route" or "key"',
        )
    elif match is not None and scope == "route" and match not in callable_names:
        mine.add(
            table.key_of("match"),
            f"names {match!r}, which is not a route, alias or model"
            f"{did_you_mean(match, callable_names)}: a route budget counts calls by the name "
            "callers pass as model, so fix the name or declare it",
        )
    problems.extend(mine)
    if mine:
        return None
    return SpendBudget(name=name, **read)
