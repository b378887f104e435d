"""``guardedllm smoke CONFIG --env NAME``: one tiny real call to every deployment an
environment's aliases and routes reach, so a missing model fails CI, not production; and, when
the config has a ``[state]`` store, a PING to it, so an unreachable store or a password variable
missing from the deploy fails CI too."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs
import httpx

from guardedllm._clientbase import open_store
from guardedllm.cli._table import format_table
from guardedllm.client import Client
from guardedllm.errors import ConfigError, GuardedLLMError, ProviderError
from guardedllm.policy import Policy
from guardedllm.registry import Registry, StateConfig
from guardedllm.types import Attempt

if TYPE_CHECKING:
    from guardedllm.params import ChatCompletionMessageParam

__all__ = ["ping_store", "run_smoke", "smoke_rows"]

SMOKE_MESSAGES: tuple[ChatCompletionMessageParam, ...] = (
    {"role": "user", "content": "Reply with the word OK."},
)
_HEADER = ["name", "deployment", "status", "latency", "result"]


def _row(name: str, deployment: str, attempt: Attempt | None, error: str | None) -> list[str]:
    status = "-" if attempt is None or attempt.status is None else str(attempt.status)
    latency = "-" if attempt is None else f"{attempt.latency_s * 1000:.0f} ms"
    return [name, deployment, status, latency, "ok" if error is None else f"FAIL {error}"]


def smoke_rows(
    registry: Registry,
    *,
    timeout_s: float,
    http_client: httpx.Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[list[str]], dict[str, str]]:
    """One row per (alias or route, deployment): [name, deployment, status, latency, result],
    and each failed deployment's error message (which names what to fix: the variable of a
    missing key, the model id a vendor does not know). Each deployment is called once, however
    many names reach it."""
    policy = Policy(max_attempts=1, deadline_s=timeout_s, timeout_s=timeout_s)
    # A smoke call tests a deployment, not the config's spend budgets: none apply to it.
    registry = attrs.evolve(registry, budgets=())
    results: dict[str, tuple[Attempt | None, str | None]] = {}
    reasons: dict[str, str] = {}
    rows: list[list[str]] = []
    with Client(registry, policy=policy, http_client=http_client, environ=environ) as client:
        for name in [*registry.aliases, *registry.routes]:
            for deployment in registry.resolve(name).deployments:
                if deployment.name not in results:
                    results[deployment.name] = _call(client, deployment.name, reasons)
                attempt, error = results[deployment.name]
                rows.append(_row(name, deployment.name, attempt, error))
    return rows, reasons


def _call(
    client: Client, deployment: str, reasons: dict[str, str]
) -> tuple[Attempt | None, str | None]:
    try:
        response = client.chat.completions.create(
            model=deployment, messages=SMOKE_MESSAGES, max_tokens=1
        )
    except GuardedLLMError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, GuardedLLMError) else exc
        code = f" ({cause.code})" if isinstance(cause, ProviderError) and cause.code else ""
        attempt = exc.attempts[-1] if exc.attempts else None
        reasons[deployment] = str(cause)  # scrubbed of keys, like every error's message
        return attempt, f"{type(cause).__name__}{code}"
    assert response.guard is not None
    return response.guard.attempts[-1], None


def ping_store(state: StateConfig, source: str) -> tuple[list[str], str | None]:
    """A PING to the ``[state]`` store, with the config's password and ``timeout_s``: its row
    ([``[state]``, url, status, latency, result]) and what went wrong, or None. Neither holds
    the password: the URL cannot hold one, and errors name the store by its address."""
    try:
        store = open_store(state, source)
    except ConfigError as error:  # redis-py missing, or the password variable unset
        problems = "; ".join(str(problem) for problem in error.problems)
        return ["[state]", state.url, "-", "-", "FAIL ConfigError"], problems
    try:
        latency = store.ping()
    except GuardedLLMError as error:  # StateError: no answer, credentials refused...
        return ["[state]", state.url, "-", "-", f"FAIL {type(error).__name__}"], str(error)
    finally:
        store.close()
    return ["[state]", state.url, "PONG", f"{latency * 1000:.0f} ms", "ok"], None


def run_smoke(path: str, *, env: str | None, timeout_s: float) -> int:
    registry = Registry.from_toml(path, env=env)
    rows, reasons = smoke_rows(registry, timeout_s=timeout_s)
    store_row, store_failure = None, None
    if registry.state is not None:
        store_row, store_failure = ping_store(registry.state, path)
    print(format_table(_HEADER, [*rows, *([store_row] if store_row else [])]))
    failed = {row[1] for row in rows if row[4] != "ok"}
    where = f"environment {env!r}" if env else "the base config"
    if store_failure is not None:
        print(
            f"guardedllm smoke: the [state] store of {where} failed its PING: {store_failure}",
            file=sys.stderr,
        )
    if not rows:
        print(f"guardedllm smoke: {where} has no aliases or routes to test.", file=sys.stderr)
        return 1
    if failed:
        print(
            f"guardedllm smoke: {len(failed)} deployment(s) failed in {where}: "
            f"{', '.join(sorted(failed))}. Fix the model ids or credentials before deploying.",
            file=sys.stderr,
        )
        for deployment in sorted(failed):
            print(f"  {reasons.get(deployment, deployment + ': failed')}", file=sys.stderr)
        return 1
    if store_failure is not None:
        return 1
    store = " and the [state] store" if store_row is not None else ""
    print(f"guardedllm smoke: all {len({row[1] for row in rows})} deployment(s){store} answered.")
    return 0
