"""The registry's values: providers, deployments, routes and defaults.

Each class is what one table of the config file becomes once it has been validated
(``[providers.NAME]``, ``[models.NAME]``, ``[routes.NAME]``, ``[defaults]``). The loader checks
every rule and reports every problem with its key before building any of these; the validators
here only keep hand-built values from representing states the loader would refuse.

API keys are never stored: a provider holds the *name* of the environment variable and reads it
when asked (``ProviderConfig.api_key()``), so no value here can leak a key through a repr, a log
line or a pickled object.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError
from guardedllm.registry._http import (
    base_url_problem,
    header_name_problem,
    header_value_problem,
    path_id_problem,
)

__all__ = [
    "CAPABILITIES",
    "DEFAULT_BASE_URLS",
    "ESCALATION_TRIGGERS",
    "MODEL_KINDS",
    "PROVIDER_KINDS",
    "ROUTE_STRATEGIES",
    "Condition",
    "Defaults",
    "Deployment",
    "ProviderConfig",
    "Route",
    "RouteRule",
    "ShadowSetting",
    "worst_call_usd",
    "worst_call_usd_bound",
]

PROVIDER_KINDS = frozenset({"openai", "openai-compatible", "azure-openai", "anthropic", "gemini"})

# Kinds whose vendor has one public endpoint; the others (a self-hosted or third-party
# OpenAI-compatible server, an Azure resource) have no URL we could guess.
DEFAULT_BASE_URLS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "https://api.openai.com/v1",
        "anthropic": "https://api.anthropic.com",
        "gemini": "https://generativelanguage.googleapis.com",
    }
)

# What a deployment may declare it supports. A closed set, so that a typo ("vison") is an
# error at load time rather than a capability silently missing at call time.
CAPABILITIES = frozenset({"tools", "vision", "json", "streaming", "reasoning"})

# What a deployment answers: chat completions, or embeddings (``client.embeddings.create``).
# A call of the other kind is refused naming the deployment, and a route never mixes kinds.
MODEL_KINDS = ("chat", "embedding")


def _frozen_mapping(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A read-only copy: a frozen value must not change through a dict someone else holds."""
    return MappingProxyType(dict(value))


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _header_names(headers: Mapping[str, str]) -> str:
    # Header values may carry credentials a gateway needs; a repr shows only the names.
    return repr(sorted(headers))


def _non_negative(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ArgumentError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ArgumentError(f"{attribute.name} must be > 0, got {value!r}")


def _seconds(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    _positive(_, attribute, value)
    if value is not None and value > defaults.MAX_SECONDS:
        raise ArgumentError(
            f"{attribute.name} must be at most {defaults.MAX_SECONDS:g} seconds, got {value!r}"
        )


def worst_call_usd(
    *,
    context_window: int,
    max_output_tokens: int,
    input_usd_per_mtok: float,
    output_usd_per_mtok: float,
    cached_input_usd_per_mtok: float | None = None,
    reasoning_usd_per_mtok: float | None = None,
) -> float:
    """The most one call to a deployment can cost, in USD: a whole context window of input and
    every output token it allows, each at the dearest rate that may apply to it. No estimate's
    worst case (``Estimate.cost_usd_max``) is above it."""
    input_rate = max(input_usd_per_mtok, cached_input_usd_per_mtok or 0.0)
    output_rate = max(output_usd_per_mtok, reasoning_usd_per_mtok or 0.0)
    return (context_window * input_rate + max_output_tokens * output_rate) / 1_000_000


def worst_call_usd_bound() -> float:
    """The largest worst case a call may have: what the spend ledger can reserve at once. Read
    when a deployment is checked, not imported with the registry: the guards load with the
    first client."""
    from guardedllm.guards.spend import MAX_BUDGET_USD

    return MAX_BUDGET_USD


def _sendable_url(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    wrong = base_url_problem(value)
    if wrong is not None:
        raise ArgumentError(f"{attribute.name} {wrong}")


def _sendable_headers(_: Any, __: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
    for name, text in value.items():
        wrong = header_name_problem(name) or header_value_problem(text)
        if wrong is not None:
            raise ArgumentError(f"header {name!r} {wrong}")  # never the value: it may be a secret


def _path_segment(_: Any, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    wrong = path_id_problem(value) if value is not None else None
    if wrong is not None:
        raise ArgumentError(f"{attribute.name} {wrong}")


def _known_capabilities(_: Any, attribute: attrs.Attribute[Any], value: frozenset[str]) -> None:
    unknown = value - CAPABILITIES
    if unknown:
        raise ArgumentError(
            f"unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}"
        )


@attrs.frozen(kw_only=True)
class ProviderConfig:
    """Where and how to reach one vendor account (a ``[providers.NAME]`` table).

    ``api_key_env`` names the environment variable holding the key (None: send no key, as for
    a local OpenAI-compatible server). ``api_version`` is Azure's ``api-version`` query
    parameter. ``timeout_s`` overrides ``[defaults] timeout_s`` for attempts on this provider.
    """

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(PROVIDER_KINDS))
    base_url: str = attrs.field(validator=_sendable_url)
    api_key_env: str | None = None
    api_version: str | None = attrs.field(default=None, validator=_path_segment)
    headers: Mapping[str, str] = attrs.field(
        factory=dict,
        converter=_frozen_mapping,
        validator=_sendable_headers,
        repr=_header_names,
        hash=False,
    )
    timeout_s: float | None = attrs.field(default=None, validator=_seconds)
    # Status -> "retry" | "fallback" | "fail", over the engine's table, for a vendor whose
    # statuses mean something else (an OpenAI-compatible gateway answering 404 while warming).
    outcomes: Mapping[int, str] = attrs.field(factory=dict, converter=_frozen_mapping, hash=False)

    def api_key(self, environ: Mapping[str, str] = os.environ) -> str | None:
        """The key, read from ``environ`` now (None when unset or empty; never cached)."""
        if self.api_key_env is None:
            return None
        return environ.get(self.api_key_env) or None


@attrs.frozen(kw_only=True)
class Deployment:
    """One vendor model behind one provider (a ``[models.NAME]`` table).

    Prices are US dollars per million tokens. ``cached_input_usd_per_mtok`` None means the
    vendor gives no cache discount (cached tokens cost ``input_usd_per_mtok``);
    ``reasoning_usd_per_mtok`` None means reasoning tokens are billed as output.
    ``max_output_tokens`` never exceeds ``context_window``.

    ``kind`` is "chat" or "embedding". An embedding deployment produces no output tokens: its
    ``max_output_tokens`` and ``output_usd_per_mtok`` are 0, ``context_window`` is the most
    tokens one input may have, ``dimensions`` the length of its vectors (None: not declared,
    and then it may not share a route with another embedding deployment) and
    ``max_batch_items`` the most inputs one request may carry (None: the vendor's limit,
    ``defaults.EMBEDDING_MAX_BATCH_ITEMS``).
    """

    name: str
    provider: str
    model: str
    tokenizer: str
    context_window: int = attrs.field(validator=_positive)
    kind: str = attrs.field(default="chat", validator=attrs.validators.in_(MODEL_KINDS))
    max_output_tokens: int = attrs.field(default=0, validator=_non_negative)
    input_usd_per_mtok: float = attrs.field(validator=_non_negative)
    output_usd_per_mtok: float = attrs.field(default=0.0, validator=_non_negative)
    cached_input_usd_per_mtok: float | None = attrs.field(default=None, validator=_non_negative)
    reasoning_usd_per_mtok: float | None = attrs.field(default=None, validator=_non_negative)
    capabilities: frozenset[str] = attrs.field(
        default=frozenset(), converter=frozenset, validator=_known_capabilities
    )
    rpm: int | None = attrs.field(default=None, validator=_positive)
    tpm: int | None = attrs.field(default=None, validator=_positive)
    dimensions: int | None = attrs.field(default=None, validator=_positive)
    max_batch_items: int | None = attrs.field(default=None, validator=_positive)

    @max_output_tokens.validator
    def _fits_context(self, _: attrs.Attribute[int], value: int) -> None:
        if value > self.context_window:
            raise ArgumentError(
                f"max_output_tokens ({value}) exceeds context_window ({self.context_window})"
            )
        if self.kind == "chat" and value < 1:
            raise ArgumentError(f"max_output_tokens must be > 0, got {value!r}")
        if self.kind == "embedding" and value:
            raise ArgumentError(
                f"deployment {self.name!r} is an embedding model, which produces no output "
                f"tokens: max_output_tokens must be 0, got {value!r}"
            )

    @property
    def is_embedding(self) -> bool:
        return self.kind == "embedding"

    def __attrs_post_init__(self) -> None:
        worst = worst_call_usd(
            context_window=self.context_window,
            max_output_tokens=self.max_output_tokens,
            input_usd_per_mtok=self.input_usd_per_mtok,
            output_usd_per_mtok=self.output_usd_per_mtok,
            cached_input_usd_per_mtok=self.cached_input_usd_per_mtok,
            reasoning_usd_per_mtok=self.reasoning_usd_per_mtok,
        )
        if not worst <= worst_call_usd_bound():
            raise ArgumentError(
                f"deployment {self.name!r}: one call's worst case is ${worst:,.0f}, more than "
                f"the ${worst_call_usd_bound():,.0f} a spend budget can count; prices are USD "
                "per million tokens"
            )


# How a route orders the deployments its ``fallback`` lists (``split`` picks among ``split``'s
# arms instead). Each is evaluated by guardedllm.routing on every call.
ROUTE_STRATEGIES = frozenset({"fallback", "cheapest", "fastest", "split"})

# What may make an escalating route move on to ``escalate_to``: the small model failed, it
# stopped at its token limit (finish_reason "length"), or the caller's validator rejected it.
ESCALATION_TRIGGERS = frozenset({"error", "length", "invalid"})


SHADOW_MAX_IN_FLIGHT = defaults.SHADOW_MAX_IN_FLIGHT


def _str_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class Condition:
    """When a route rule applies (``when = {...}``); every field set must hold.

    ``max_input_tokens`` / ``min_input_tokens`` bound the estimated prompt; ``max_output_tokens``
    bounds the ``max_tokens`` the caller asked for (a call that sets none never matches it);
    ``capabilities`` must all be needed by the request (images: "vision", tools: "tools", a
    JSON ``response_format``: "json"); ``tags`` must all be present with these values in the
    call's tags. An empty condition always holds.
    """

    max_input_tokens: int | None = attrs.field(default=None, validator=_positive)
    min_input_tokens: int | None = attrs.field(default=None, validator=_non_negative)
    max_output_tokens: int | None = attrs.field(default=None, validator=_positive)
    capabilities: frozenset[str] = attrs.field(
        default=frozenset(), converter=frozenset, validator=_known_capabilities
    )
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_str_mapping, hash=False)


@attrs.frozen(kw_only=True)
class RouteRule:
    """``[[routes.NAME.rules]]``: when ``when`` holds, the call goes to ``use`` (a model, alias
    or route) instead of the route's own plan. Rules are tried in order; the first wins."""

    when: Condition = attrs.field(factory=Condition)
    use: str


@attrs.frozen(kw_only=True)
class ShadowSetting:
    """``shadow = {...}``: copy a sample of calls to ``deployment`` in the background.

    ``sample`` is the fraction of calls copied (0 < sample <= 1); ``max_in_flight`` bounds the
    copies running at once, so a slow candidate cannot pile them up.
    """

    deployment: str
    sample: float = attrs.field(validator=_positive)
    max_in_flight: int = attrs.field(default=SHADOW_MAX_IN_FLIGHT, validator=_positive)

    @sample.validator
    def _at_most_one(self, _: attrs.Attribute[float], value: float) -> None:
        if value > 1:
            raise ArgumentError(f"shadow sample is a fraction of calls, at most 1; got {value!r}")


def _rules(value: Iterable[RouteRule]) -> tuple[RouteRule, ...]:
    return tuple(value)


def _split(
    value: Mapping[str, float] | Iterable[tuple[str, float]],
) -> tuple[tuple[str, float], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((name, float(weight)) for name, weight in items)


@attrs.frozen(kw_only=True)
class Route:
    """A named routing policy (a ``[routes.NAME]`` table).

    ``fallback`` holds deployment names, in order; aliases written in the config are resolved
    at load time. ``strategy`` orders them: as written ("fallback"), cheapest worst-case cost
    first ("cheapest"), lowest recent latency first ("fastest"); "split" instead sends each
    call to one arm of ``split`` (name -> weight, sticky by the caller's key). ``rules`` may
    send a call elsewhere first; ``escalate_to`` is where a call goes when this route's answer
    is not good enough (see ``escalate_on``); ``shadow`` copies a sample of calls to a
    candidate. Rules, split arms and ``escalate_to`` name models, aliases or other routes.
    ``max_attempts`` counts attempts per deployment. Fields left None defer to ``[defaults]``
    (or, for ``max_cost_usd``, to no cap).
    """

    name: str
    fallback: tuple[str, ...] = attrs.field(default=(), converter=_names)
    rules: tuple[RouteRule, ...] = attrs.field(default=(), converter=_rules)
    split: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_split)
    # Defaults to "split" when split arms are given, else "fallback".
    strategy: str = attrs.field(validator=attrs.validators.in_(ROUTE_STRATEGIES))
    escalate_to: str | None = None
    escalate_on: frozenset[str] = attrs.field(default=ESCALATION_TRIGGERS, converter=frozenset)
    shadow: ShadowSetting | None = None
    deadline_s: float | None = attrs.field(default=None, validator=_seconds)
    max_cost_usd: float | None = attrs.field(default=None, validator=_positive)
    max_attempts: int | None = attrs.field(default=None, validator=_positive)

    @strategy.default
    def _strategy_of_split(self) -> str:
        return "split" if self.split else "fallback"

    @fallback.validator
    def _not_empty(self, _: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
        if self.strategy == "split":
            return
        if not value:
            raise ArgumentError(f"route {self.name!r} needs at least one deployment in fallback")

    @split.validator
    def _arms(self, _: attrs.Attribute[Any], value: tuple[tuple[str, float], ...]) -> None:
        if self.strategy == "split" and not value:
            raise ArgumentError(f"route {self.name!r} has strategy split but no split arms")
        if value and self.strategy != "split":
            raise ArgumentError(
                f"route {self.name!r} has split arms but strategy {self.strategy!r}"
            )
        for arm, weight in value:
            if not (weight > 0 and math.isfinite(weight)):
                raise ArgumentError(f"split weight of {arm!r} must be > 0, got {weight!r}")

    @escalate_on.validator
    def _triggers(self, _: attrs.Attribute[frozenset[str]], value: frozenset[str]) -> None:
        unknown = value - ESCALATION_TRIGGERS
        if unknown:
            raise ArgumentError(
                f"unknown escalation triggers {sorted(unknown)}; "
                f"known: {sorted(ESCALATION_TRIGGERS)}"
            )

    def references(self) -> tuple[str, ...]:
        """Every name this route sends calls to besides its fallback: rule targets, split arms,
        ``escalate_to`` and the shadow deployment, in that order."""
        names = [rule.use for rule in self.rules]
        names += [arm for arm, _ in self.split]
        if self.escalate_to is not None:
            names.append(self.escalate_to)
        if self.shadow is not None:
            names.append(self.shadow.deployment)
        return tuple(names)


@attrs.frozen(kw_only=True)
class Defaults:
    """The ``[defaults]`` table: guard settings for calls whose route does not set them.

    The numbers, and the reason for each, live in ``guardedllm.defaults``.
    """

    deadline_s: float = attrs.field(default=defaults.DEADLINE_S, validator=_seconds)
    max_attempts: int = attrs.field(default=defaults.MAX_ATTEMPTS, validator=_positive)
    timeout_s: float = attrs.field(default=defaults.TIMEOUT_S, validator=_seconds)
    max_retry_after_s: float = attrs.field(default=defaults.MAX_RETRY_AFTER_S, validator=_seconds)
