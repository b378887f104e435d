"""From parsed TOML data to located tables: the base config and each environment's view.

A ``Layer`` is every table of one view of the config, each value tagged with the key it was
written under. The base layer is the top level of the file; an environment's layer is the base
with ``[env.NAME]``'s tables laid over it. Overlays may change fields of providers, models,
routes and spend budgets that the base declares and may add or change aliases; naming an entry
the base lacks is a problem (a typo there would otherwise create a half-defined entry).
``[defaults]``, ``[state]`` and ``[record]`` are single tables: an overlay changes their fields,
and may give an environment the ``[state]`` or ``[record]`` the base leaves out (a shared store,
or a recorder, in prod and none in dev).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from guardedllm.registry._check import Problems, Table, did_you_mean, dotted, unknown_keys

__all__ = ["ENTRY_SECTIONS", "Layer", "Layers", "read_layers"]

# Sections whose entries are tables of fields: [providers.NAME], [models.NAME], [routes.NAME],
# [budgets.NAME].
ENTRY_SECTIONS = ("providers", "models", "routes", "budgets")
_OVERLAY_SECTIONS = (*ENTRY_SECTIONS, "aliases", "defaults", "state", "record")
_TOP_SECTIONS = (*_OVERLAY_SECTIONS, "env")


@attrs.frozen(kw_only=True)
class Layer:
    """One view of the config. ``aliases`` maps a name to (its target as written, its key);
    ``state`` / ``record`` are None when the view has no such table."""

    providers: Mapping[str, Table]
    models: Mapping[str, Table]
    routes: Mapping[str, Table]
    budgets: Mapping[str, Table]
    aliases: Mapping[str, tuple[Any, str]]
    defaults: Table
    state: Table | None
    record: Table | None = None

    def entries(self, section: str) -> Mapping[str, Table]:
        tables: Mapping[str, Table] = getattr(self, section)
        return tables


@attrs.frozen(kw_only=True)
class Layers:
    """The base view, each environment's view, and the alias names each ``[env.NAME.aliases]``
    declares (the cross-environment checks need to know where an alias came from)."""

    base: Layer
    envs: Mapping[str, Layer]
    env_aliases: Mapping[str, frozenset[str]]


def _table(value: Any, key: str, what: str, problems: Problems) -> Mapping[str, Any]:
    if isinstance(value, dict):
        return value
    problems.add(key, f"must be a table ({what}), not a single value: check the brackets")
    return {}


def _entries(section: Mapping[str, Any], key: str, problems: Problems) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    for name, value in section.items():
        entry_key = dotted(key, name)
        if isinstance(value, dict):
            tables[name] = Table(key=entry_key, values=value)
        else:
            problems.add(entry_key, f"must be a table: write it as [{entry_key}] with its fields")
    return tables


def _aliases(section: Mapping[str, Any], key: str) -> dict[str, tuple[Any, str]]:
    return {name: (target, dotted(key, name)) for name, target in section.items()}


def _read_base(data: Mapping[str, Any], problems: Problems) -> Layer:
    def section(name: str) -> Mapping[str, Any]:
        return _table(data.get(name, {}), name, f"[{name}.NAME] entries", problems)

    return Layer(
        providers=_entries(section("providers"), "providers", problems),
        models=_entries(section("models"), "models", problems),
        routes=_entries(section("routes"), "routes", problems),
        budgets=_entries(section("budgets"), "budgets", problems),
        aliases=_aliases(section("aliases"), "aliases"),
        defaults=Table(
            key="defaults",
            values=_table(data.get("defaults", {}), "defaults", "[defaults]", problems),
        ),
        state=_single(data, "state", "state", problems),
        record=_single(data, "record", "record", problems),
    )


def _single(data: Mapping[str, Any], name: str, key: str, problems: Problems) -> Table | None:
    """The table ``data[name]`` written at ``key``, or None when it is absent or no table
    (reported)."""
    if name not in data:
        return None
    values = _table(data[name], key, f"[{key}] fields", problems)
    return Table(key=key, values=values) if isinstance(data[name], dict) else None


def _overlay(base: Layer, env: str, data: Mapping[str, Any], problems: Problems) -> Layer:
    env_key = dotted("env", env)
    unknown_keys(data, _OVERLAY_SECTIONS, env_key, problems)

    def section(name: str) -> Mapping[str, Any]:
        key = dotted(env_key, name)
        return _table(data.get(name, {}), key, f"[{key}.NAME] entries", problems)

    changed: dict[str, dict[str, Table]] = {}
    for name in ENTRY_SECTIONS:
        tables = dict(base.entries(name))
        key = dotted(env_key, name)
        for entry, value in section(name).items():
            entry_key = dotted(key, entry)
            if entry not in tables:
                problems.add(
                    entry_key,
                    f"overrides no [{dotted(name, entry)}] of the base config"
                    f"{did_you_mean(entry, tables)}: declare it at top level, then override "
                    "its fields here",
                )
            elif not isinstance(value, dict):
                problems.add(entry_key, f"must be a table: write it as [{entry_key}]")
            else:
                tables[entry] = tables[entry].overlaid(value, entry_key)
        changed[name] = tables
    defaults_key = dotted(env_key, "defaults")
    defaults = _table(data.get("defaults", {}), defaults_key, "[defaults] fields", problems)
    state = _overlaid_single(base.state, data, "state", env_key, problems)
    record = _overlaid_single(base.record, data, "record", env_key, problems)
    return Layer(
        providers=changed["providers"],
        models=changed["models"],
        routes=changed["routes"],
        budgets=changed["budgets"],
        aliases={**base.aliases, **_aliases(section("aliases"), dotted(env_key, "aliases"))},
        defaults=base.defaults.overlaid(defaults, defaults_key),
        state=state,
        record=record,
    )


def _overlaid_single(
    base: Table | None, data: Mapping[str, Any], name: str, env_key: str, problems: Problems
) -> Table | None:
    """The single table ``name`` of an environment: the base's with the overlay's fields."""
    overlay = _single(data, name, dotted(env_key, name), problems)
    if overlay is None:
        return base
    return overlay if base is None else base.overlaid(overlay.values, overlay.key)


def read_layers(data: Mapping[str, Any], problems: Problems) -> Layers:
    """Every view of ``data``; structural problems (unknown sections, values where tables
    belong, overlays of undeclared entries) go to ``problems``."""
    unknown_keys(data, _TOP_SECTIONS, "", problems)
    base = _read_base(data, problems)
    envs: dict[str, Layer] = {}
    env_aliases: dict[str, frozenset[str]] = {}
    for env, overlay in _table(data.get("env", {}), "env", "[env.NAME] overlays", problems).items():
        if not isinstance(overlay, dict):
            problems.add(dotted("env", env), "must be a table of overlays like [env.NAME.aliases]")
            continue
        envs[env] = _overlay(base, env, overlay, problems)
        aliases = overlay.get("aliases", {})
        env_aliases[env] = frozenset(aliases) if isinstance(aliases, dict) else frozenset()
    return Layers(base=base, envs=envs, env_aliases=env_aliases)
