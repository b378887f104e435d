"""A ``[models.NAME]`` table with what the catalog knows filled in, and where each field came from.

The merge happens before the table is read, so every check sees the fields a deployment will
have: the "missing; every model needs it" problems fire only when neither the config nor the
catalog has the field, and a field the config sets always wins over the catalog's. Whether an
``[env.NAME]`` overlay or the base set a field makes no difference here: the overlay has
already been laid over the table, and its key is the one recorded.
"""

from __future__ import annotations

from collections.abc import Mapping

from guardedllm.registry._catalog import (
    CATALOG_VENDORS,
    CatalogEntry,
    Origin,
    load_catalog,
)
from guardedllm.registry._check import Problems, Table, did_you_mean

__all__ = ["catalog_entry_of", "explain_uncatalogued", "inherit"]

# The fields every deployment needs that the catalog could have supplied.
_NEEDED = (
    "tokenizer",
    "context_window",
    "max_output_tokens",
    "input_usd_per_mtok",
    "output_usd_per_mtok",
)
# An embedding model has no output: no output limit or price to inherit.
_NEEDED_BY_EMBEDDING = ("tokenizer", "context_window", "input_usd_per_mtok")


def catalog_entry_of(
    provider: object, model_id: object, kinds: Mapping[str, str | None]
) -> CatalogEntry | None:
    """The catalog entry for a deployment's provider (its name) and vendor model id, or None
    when either is unusable or the catalog does not know the id for that provider kind."""
    if not isinstance(provider, str) or not isinstance(model_id, str):
        return None
    kind = kinds.get(provider)
    if kind not in CATALOG_VENDORS:
        return None
    return load_catalog().lookup(kind, model_id)


def inherit(
    table: Table, kinds: Mapping[str, str | None], fields: tuple[str, ...]
) -> tuple[Table, dict[str, Origin]]:
    """``table`` with the catalog's values for the fields it leaves out, and the origin of each
    of ``fields`` (every field a model takes). ``kinds`` maps provider names to their kinds."""
    values = table.values
    entry = catalog_entry_of(values.get("provider"), values.get("model"), kinds)
    inherited: dict[str, object] = {}
    if entry is not None:
        inherited = {f: v for f, v in entry.config_values().items() if f not in values}
    origins: dict[str, Origin] = {}
    for field in fields:
        if field in values:
            origins[field] = Origin(source="config", key=table.key_of(field))
        elif field in inherited:
            origins[field] = Origin(source="catalog", entry=entry)
        else:
            origins[field] = Origin(source="default")
    if not inherited:
        return table, origins
    merged = Table(key=table.key, values={**inherited, **values}, field_keys=table.field_keys)
    return merged, origins


def explain_uncatalogued(table: Table, kinds: Mapping[str, str | None], problems: Problems) -> None:
    """When an entry leaves out fields the catalog would supply but the catalog does not know
    its model id, say so once at ``model``: a misspelt id (``gpt-4o-mni``) otherwise shows up
    only as five missing fields."""
    values = table.values
    provider, model_id = values.get("provider"), values.get("model")
    kind = kinds.get(provider) if isinstance(provider, str) else None
    needed = _NEEDED if values.get("kind", "chat") == "chat" else _NEEDED_BY_EMBEDDING
    missing = [f for f in needed if f not in values]
    if not missing or kind not in CATALOG_VENDORS or not isinstance(model_id, str):
        return
    if load_catalog().lookup(kind, model_id) is not None:
        return
    known = [i for e in load_catalog().vendor_entries(kind) for i in e.ids]
    problems.add(
        table.key_of("model"),
        f"{model_id!r} is not in the model catalog for {kind} providers"
        f"{did_you_mean(model_id, known)}, so {', '.join(missing)} cannot be inherited: fix "
        "the id (`guardedllm models` lists the catalog) or write those fields out",
    )
