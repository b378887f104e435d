"""``guardedllm smoke CONFIG --env NAME``: one tiny real call to every deployment an
environment's aliases and routes may send to (their fallbacks, rules, split arms, escalation
targets and shadow candidates; with ``--all``, every model of the registry), so a missing model
fails CI, not production; and, when the config has a ``[state]`` store, a PING to it, so an
unreachable store or a password variable missing from the deploy fails CI too.

The results are values (``SmokeResult``) that the terminal table, ``--json`` and ``--junit``
are each made from, so the three never disagree.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from guardedllm._clientbase import open_store
from guardedllm.cli._table import format_table
from guardedllm.client import Client
from guardedllm.errors import AuthenticationError, ConfigError, GuardedLLMError, ProviderError
from guardedllm.policy import Policy
from guardedllm.registry import Registry, StateConfig
from guardedllm.registry._resolve import deployments_of, follow_aliases
from guardedllm.types import ChatCompletion, CreateEmbeddingResponse

if TYPE_CHECKING:
    from guardedllm.params import ChatCompletionMessageParam

__all__ = ["SmokeResult", "ping_store", "run_smoke", "smoke_results"]

SMOKE_MESSAGES: tuple[ChatCompletionMessageParam, ...] = (
    {"role": "user", "content": "Reply with the word OK."},
)
_HEADER = ["name", "deployment", "status", "latency", "result"]


@attrs.frozen(kw_only=True)
class SmokeResult:
    """One (name, deployment) of the smoke run, or the ``[state]`` store's PING (``name`` is
    "[state]" and ``deployment`` the store's URL, which holds no password). ``error_type``,
    ``code`` and ``reason`` are None when it answered; ``reason`` says what to fix (the
    variable of a missing key, the model id a vendor does not know), never a key."""

    name: str
    deployment: str
    status: str  # an HTTP status, "PONG", or "-" when nothing answered
    latency_s: float | None
    error_type: str | None = None
    code: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None

    def row(self) -> list[str]:
        latency = "-" if self.latency_s is None else f"{self.latency_s * 1000:.0f} ms"
        result = "ok" if self.ok else f"FAIL {self.error_type}{self._detail()}"
        return [self.name, self.deployment, self.status, latency, result]

    def _detail(self) -> str:
        return f" ({self.code})" if self.code else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "deployment": self.deployment,
            "status": self.status,
            "latency_s": self.latency_s,
            "ok": self.ok,
            "error_type": self.error_type,
            "code": self.code,
            "reason": self.reason,
        }


def smoke_results(
    registry: Registry,
    *,
    timeout_s: float,
    every_model: bool = False,
    http_client: httpx.Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[SmokeResult]:
    """One result per (alias or route, deployment it may send to), in the config's order;
    with ``every_model``, also one per model no name reaches (named after itself). Each
    deployment is called once, however many names reach it."""
    policy = Policy(max_attempts=1, deadline_s=timeout_s, timeout_s=timeout_s)
    # A smoke call tests a deployment, not the config's spend budgets: none apply to it.
    registry = attrs.evolve(registry, budgets=())
    pairs = [
        (name, deployment)
        for name in [*registry.aliases, *registry.routes]
        for deployment in _reached(registry, name)
    ]
    if every_model:
        reached = {deployment for _, deployment in pairs}
        pairs += [(name, name) for name in registry.models if name not in reached]
    called: dict[str, SmokeResult] = {}
    with Client(registry, policy=policy, http_client=http_client, environ=environ) as client:
        for _, deployment in pairs:
            if deployment not in called:
                called[deployment] = _call(client, registry, deployment)
    return [attrs.evolve(called[deployment], name=name) for name, deployment in pairs]


def _reached(registry: Registry, name: str) -> list[str]:
    """Every deployment a call to ``name`` may be sent to, its route's shadow candidate last
    (a copy's failure is only noted, but a candidate that 404s in prod should fail CI)."""
    reached = deployments_of(name, registry.models, registry.aliases, registry.routes)
    route = registry.routes.get(follow_aliases(name, registry.aliases)[0][-1])
    if route is not None and route.shadow is not None:
        shadow = follow_aliases(route.shadow.deployment, registry.aliases)[0][-1]
        if shadow not in reached:
            reached.append(shadow)
    return reached


def _call(client: Client, registry: Registry, deployment: str) -> SmokeResult:
    response: ChatCompletion | CreateEmbeddingResponse
    try:
        if registry.models[deployment].is_embedding:  # the smallest call it answers
            response = client.embeddings.create(model=deployment, input="ping")
        else:
            response = client.chat.completions.create(
                model=deployment, messages=SMOKE_MESSAGES, max_tokens=1
            )
    except GuardedLLMError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, GuardedLLMError) else exc
        attempt = exc.attempts[-1] if exc.attempts else None
        code = cause.code if isinstance(cause, ProviderError) else None
        if isinstance(cause, AuthenticationError) and cause.status is None:
            # Nothing was sent: the key's variable is unset or malformed. Name it in the table.
            code = f"{registry.provider_of(deployment).api_key_env} not set or malformed"
        return SmokeResult(
            name=deployment,
            deployment=deployment,
            status="-" if attempt is None or attempt.status is None else str(attempt.status),
            latency_s=None if attempt is None else attempt.latency_s,
            error_type=type(cause).__name__,
            code=code,
            reason=str(cause),  # scrubbed of keys, like every error's message
        )
    assert response.guard is not None
    attempt = response.guard.attempts[-1]
    return SmokeResult(
        name=deployment,
        deployment=deployment,
        status=str(attempt.status),
        latency_s=attempt.latency_s,
    )


def ping_store(state: StateConfig, source: str) -> SmokeResult:
    """A PING to the ``[state]`` store, with the config's password and ``timeout_s``. Its
    result holds no password: the URL cannot hold one, and errors name the store by its
    address."""
    try:
        store = open_store(state, source)
    except ConfigError as error:  # redis-py missing, or the password variable unset
        problems = "; ".join(str(problem) for problem in error.problems)
        return _store_failed(state, "ConfigError", problems)
    try:
        latency = store.ping()
    except GuardedLLMError as error:  # StateError: no answer, credentials refused...
        return _store_failed(state, type(error).__name__, str(error))
    finally:
        store.close()
    return SmokeResult(name="[state]", deployment=state.url, status="PONG", latency_s=latency)


def _store_failed(state: StateConfig, error_type: str, reason: str) -> SmokeResult:
    return SmokeResult(
        name="[state]",
        deployment=state.url,
        status="-",
        latency_s=None,
        error_type=error_type,
        reason=reason,
    )


def junit_xml(results: list[SmokeResult], *, where: str) -> str:
    """The results as a JUnit XML report (one test case per row), which CI systems show."""
    failures = [r for r in results if not r.ok]
    suite = ET.Element(
        "testsuite",
        name=f"guardedllm smoke ({where})",
        tests=str(len(results)),
        failures=str(len(failures)),
        errors="0",
        time=f"{sum(r.latency_s or 0.0 for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"guardedllm.smoke.{result.name}",
            name=result.deployment,
            time=f"{result.latency_s or 0.0:.3f}",
        )
        if not result.ok:
            failure = ET.SubElement(
                case, "failure", type=result.error_type or "", message=result.row()[4]
            )
            failure.text = result.reason
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def run_smoke(
    path: str,
    *,
    env: str | None,
    timeout_s: float,
    every_model: bool = False,
    json_path: str | None = None,
    junit_path: str | None = None,
) -> int:
    registry = Registry.from_toml(path, env=env)
    results = smoke_results(registry, timeout_s=timeout_s, every_model=every_model)
    deployments = results[:]
    if registry.state is not None:
        results.append(ping_store(registry.state, path))
    where = f"environment {env!r}" if env else "the base config"
    print(format_table(_HEADER, [result.row() for result in results]))
    if json_path is not None:
        document = {
            "config": path,
            "env": env,
            "ok": bool(deployments) and all(r.ok for r in results),
            "results": [r.to_json() for r in results],
        }
        Path(json_path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if junit_path is not None:
        Path(junit_path).write_text(junit_xml(results, where=where), encoding="utf-8")
    store = next((r for r in results if r.name == "[state]"), None)
    if store is not None and not store.ok:
        print(
            f"guardedllm smoke: the [state] store of {where} failed its PING: {store.reason}",
            file=sys.stderr,
        )
    if not deployments:
        print(f"guardedllm smoke: {where} has no aliases or routes to test.", file=sys.stderr)
        return 1
    failed = {r.deployment: r for r in deployments if not r.ok}
    if failed:
        print(
            f"guardedllm smoke: {len(failed)} deployment(s) failed in {where}: "
            f"{', '.join(sorted(failed))}. Fix the model ids or credentials before deploying.",
            file=sys.stderr,
        )
        for deployment in sorted(failed):
            print(f"  {failed[deployment].reason}", file=sys.stderr)
        return 1
    if store is not None and not store.ok:
        return 1
    also = " and the [state] store" if store is not None else ""
    count = len({r.deployment for r in deployments})
    print(f"guardedllm smoke: all {count} deployment(s){also} answered.")
    return 0
