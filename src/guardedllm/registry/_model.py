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

import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from guardedllm import defaults

__all__ = [
    "CAPABILITIES",
    "DEFAULT_BASE_URLS",
    "PROVIDER_KINDS",
    "Defaults",
    "Deployment",
    "ProviderConfig",
    "Route",
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


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy: a frozen value must not change through a dict someone else holds."""
    return MappingProxyType(dict(value))


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _header_names(headers: Mapping[str, str]) -> str:
    # Header values may carry credentials a gateway needs; a repr shows only the names.
    return repr(sorted(headers))


def _non_negative(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _known_capabilities(_: Any, attribute: attrs.Attribute[Any], value: frozenset[str]) -> None:
    unknown = value - CAPABILITIES
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")


@attrs.frozen(kw_only=True)
class ProviderConfig:
    """Where and how to reach one vendor account (a ``[providers.NAME]`` table).

    ``api_key_env`` names the environment variable holding the key (None: send no key, as for
    a local OpenAI-compatible server). ``api_version`` is Azure's ``api-version`` query
    parameter. ``timeout_s`` overrides ``[defaults] timeout_s`` for attempts on this provider.
    """

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(PROVIDER_KINDS))
    base_url: str
    api_key_env: str | None = None
    api_version: str | None = None
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_frozen_mapping, repr=_header_names, hash=False
    )
    timeout_s: float | None = attrs.field(default=None, validator=_positive)

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
    """

    name: str
    provider: str
    model: str
    tokenizer: str
    context_window: int = attrs.field(validator=_positive)
    max_output_tokens: int = attrs.field(validator=_positive)
    input_usd_per_mtok: float = attrs.field(validator=_non_negative)
    output_usd_per_mtok: float = attrs.field(validator=_non_negative)
    cached_input_usd_per_mtok: float | None = attrs.field(default=None, validator=_non_negative)
    reasoning_usd_per_mtok: float | None = attrs.field(default=None, validator=_non_negative)
    capabilities: frozenset[str] = attrs.field(
        default=frozenset(), converter=frozenset, validator=_known_capabilities
    )
    rpm: int | None = attrs.field(default=None, validator=_positive)
    tpm: int | None = attrs.field(default=None, validator=_positive)

    @max_output_tokens.validator
    def _fits_context(self, _: attrs.Attribute[int], value: int) -> None:
        if value > self.context_window:
            raise ValueError(
                f"max_output_tokens ({value}) exceeds context_window ({self.context_window})"
            )


@attrs.frozen(kw_only=True)
class Route:
    """A named fallback plan (a ``[routes.NAME]`` table).

    ``fallback`` holds deployment names, in order; aliases written in the config are resolved
    at load time. ``max_attempts`` counts attempts per deployment. Fields left None defer to
    ``[defaults]`` (or, for ``max_cost_usd``, to no cap).
    """

    name: str
    fallback: tuple[str, ...] = attrs.field(converter=_names)
    deadline_s: float | None = attrs.field(default=None, validator=_positive)
    max_cost_usd: float | None = attrs.field(default=None, validator=_positive)
    max_attempts: int | None = attrs.field(default=None, validator=_positive)

    @fallback.validator
    def _not_empty(self, _: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
        if not value:
            raise ValueError(f"route {self.name!r} needs at least one deployment in fallback")


@attrs.frozen(kw_only=True)
class Defaults:
    """The ``[defaults]`` table: guard settings for calls whose route does not set them.

    The numbers, and the reason for each, live in ``guardedllm.defaults``.
    """

    deadline_s: float = attrs.field(default=defaults.DEADLINE_S, validator=_positive)
    max_attempts: int = attrs.field(default=defaults.MAX_ATTEMPTS, validator=_positive)
    timeout_s: float = attrs.field(default=defaults.TIMEOUT_S, validator=_positive)
