"""The model registry: providers, deployments, aliases, routes, spend budgets, the shared
state store, the traffic recorder's settings and environments.

Load a config with ``Registry.from_toml(path, env="prod")``; loading validates the base config
and every ``[env.*]`` view and raises ``ConfigError`` listing every problem with its key.
``registry.resolve(name)`` turns a name application code uses into an ordered plan of
deployments; ``registry.compare_environments(["staging", "prod"])`` lists the names that reach
different vendor models in different environments.

A ``[models.NAME]`` entry naming a model id of the bundled catalog (``load_catalog()``) may
leave out what the catalog knows; ``registry.provenance("models.NAME.FIELD")`` says where each
value came from, and ``catalog_warnings(registry)`` lists the fields that drifted from it.
"""

from __future__ import annotations

from guardedllm.registry._catalog import Catalog, CatalogEntry, Origin, load_catalog
from guardedllm.registry._drift import catalog_age_warning, catalog_warnings, unchecked_models
from guardedllm.registry._fleet import ON_ERROR, StateConfig
from guardedllm.registry._model import (
    CAPABILITIES,
    DEFAULT_BASE_URLS,
    ESCALATION_TRIGGERS,
    PROVIDER_KINDS,
    ROUTE_STRATEGIES,
    Condition,
    Defaults,
    Deployment,
    ProviderConfig,
    Route,
    RouteRule,
    ShadowSetting,
)
from guardedllm.registry._record import RecordConfig
from guardedllm.registry._registry import Registry, compare_environments
from guardedllm.registry._resolve import Resolution

__all__ = [
    "CAPABILITIES",
    "DEFAULT_BASE_URLS",
    "ESCALATION_TRIGGERS",
    "ON_ERROR",
    "PROVIDER_KINDS",
    "ROUTE_STRATEGIES",
    "Catalog",
    "CatalogEntry",
    "Condition",
    "Defaults",
    "Deployment",
    "Origin",
    "ProviderConfig",
    "RecordConfig",
    "Registry",
    "Resolution",
    "Route",
    "RouteRule",
    "ShadowSetting",
    "StateConfig",
    "catalog_age_warning",
    "catalog_warnings",
    "compare_environments",
    "load_catalog",
    "unchecked_models",
]
