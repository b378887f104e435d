"""Drift between a config and the model catalog: what ``guardedllm check`` warns about.

A deployment that inherits a field from the catalog agrees with it by construction; a field the
config writes out may have drifted. Each finding is a ``ConfigProblem`` under the key where the
value was written (an ``[env.NAME]`` overlay's key when the overlay set it):

- a tokenizer other than the catalog's for that model id: the failure behind a miscounting rate
  limiter and a wrong bill, when a model swap kept the old family's tokenizer;
- a context window or output limit above the catalog's: calls the guards let through, the
  vendor refuses;
- a price other than the catalog's: estimates, caps and spend budgets off by that much;
- a catalog older than the age the caller allows (``catalog_age_warning``).

A model id the catalog does not know is allowed: ``unchecked_models`` lists those as notes,
not warnings, since a local model or a private deployment name can never be in it.
"""

from __future__ import annotations

import datetime
import math

from guardedllm.errors import ConfigProblem
from guardedllm.registry._catalog import CATALOG_VENDORS, CatalogEntry, load_catalog
from guardedllm.registry._check import dotted
from guardedllm.registry._model import Deployment
from guardedllm.registry._registry import Registry

__all__ = ["catalog_age_warning", "catalog_warnings", "unchecked_models"]

_PRICES = (
    "input_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "output_usd_per_mtok",
    "reasoning_usd_per_mtok",
)
_LIMITS = ("context_window", "max_output_tokens")


def _entry(registry: Registry, deployment: Deployment) -> CatalogEntry | None:
    kind = registry.providers[deployment.provider].kind
    if kind not in CATALOG_VENDORS:
        return None
    return load_catalog().lookup(kind, deployment.model)


def _key(registry: Registry, name: str, field: str) -> str:
    origin = registry.origins(name)[field]
    return origin.key or dotted("models", name, field)


def _same_price(a: float, b: float) -> bool:
    # Prices are read from decimal text on both sides; a relative tolerance absorbs the binary
    # rounding of numbers like 0.075 without hiding any real difference in cents.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _drift(registry: Registry, name: str, entry: CatalogEntry) -> list[ConfigProblem]:
    deployment = registry.models[name]
    origins = registry.origins(name)
    cited = f"the model catalog ({entry.describe()})"
    found: list[ConfigProblem] = []
    counts = "counts with" if entry.tokenizer_exact else "is estimated with the stand-in"
    if deployment.tokenizer != entry.tokenizer and origins["tokenizer"].source == "config":
        found.append(
            ConfigProblem(
                key=_key(registry, name, "tokenizer"),
                message=f"is {deployment.tokenizer!r}, but {deployment.model!r} "
                f"{counts} {entry.tokenizer!r} per {cited}: token estimates, tpm limits and "
                "costs would be counted with another model's tokenizer; remove the key to "
                "inherit the catalog's, or set it to that",
            )
        )
    for field in _LIMITS:
        value, known = getattr(deployment, field), getattr(entry, field)
        if known is None or value <= known or origins[field].source != "config":
            continue
        found.append(
            ConfigProblem(
                key=_key(registry, name, field),
                message=f"is {value:,}, above the {known:,} of {deployment.model!r} per {cited}: "
                "calls the guards let through would be refused by the vendor; remove the key "
                "to inherit the catalog's, or lower it",
            )
        )
    for field in _PRICES:
        value, known = getattr(deployment, field), getattr(entry, field)
        if value is None or known is None or origins[field].source != "config":
            continue
        if _same_price(value, known):
            continue
        found.append(
            ConfigProblem(
                key=_key(registry, name, field),
                message=f"is {value:g} USD per million tokens, but {deployment.model!r} costs "
                f"{known:g} per {cited}: estimates, cost caps and spend budgets would be off by "
                "the difference; remove the key to inherit the catalog's price, or keep it if "
                "it is your negotiated price (then this warning stays)",
            )
        )
    return found


def catalog_warnings(registry: Registry) -> tuple[ConfigProblem, ...]:
    """Every field of ``registry``'s deployments that differs from the model catalog where it
    matters: another tokenizer, a larger context window or output limit, another price."""
    found: dict[ConfigProblem, None] = {}
    for name, deployment in registry.models.items():
        entry = _entry(registry, deployment)
        if entry is not None:
            found.update(dict.fromkeys(_drift(registry, name, entry)))
    return tuple(found)


def unchecked_models(registry: Registry) -> tuple[ConfigProblem, ...]:
    """A note, under ``models.NAME.model``, for each deployment whose model id the catalog does
    not know: its tokenizer, limits and prices are as written, and nothing checks them."""
    notes = []
    for name, deployment in registry.models.items():
        kind = registry.providers[deployment.provider].kind
        if _entry(registry, deployment) is not None:
            continue
        why = (
            f"not in the model catalog for {kind} providers"
            if kind in CATALOG_VENDORS
            else f"served by an {kind} provider, which the model catalog does not cover"
        )
        if kind == "azure-openai":
            why += " (an Azure deployment is matched by its name: named like its model, it is)"
        notes.append(
            ConfigProblem(
                key=_key(registry, name, "model"),
                message=f"{deployment.model!r} is {why}: its tokenizer, limits and prices are "
                "used as written, unchecked",
            )
        )
    return tuple(notes)


def catalog_age_warning(
    max_age_days: int, *, today: datetime.date | None = None
) -> ConfigProblem | None:
    """A warning when the model catalog is more than ``max_age_days`` old on ``today`` (UTC
    today by default): vendors change prices and limits, and an old catalog checks against
    stale facts."""
    catalog = load_catalog()
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    age = catalog.age_days(today)
    if age <= max_age_days:
        return None
    return ConfigProblem(
        key="(catalog)",
        message=f"the model catalog is dated {catalog.date.isoformat()}, {age} days ago, older "
        f"than the {max_age_days} days allowed: prices and limits may have changed since; "
        "upgrade guardedllm (pip install -U guardedllm) for a newer catalog, or allow more days",
    )
