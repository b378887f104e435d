"""Validating a whole config and building the values of the view asked for.

``load`` checks the base config and every environment's view, whichever one is wanted: a
config that breaks in staging is broken, and ``guardedllm check`` must say so before deploy.
Every problem is collected (each with its dotted key) and raised at once in one ConfigError.

A base problem shows up again in each environment's view; it is reported once, under its own
key, and an environment only adds problems at keys the base did not already explain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from guardedllm.errors import ConfigError
from guardedllm.registry._catalog import Origin
from guardedllm.registry._check import Problems, Table, did_you_mean, dotted
from guardedllm.registry._environments import check_alias_coverage
from guardedllm.registry._fleet import StateConfig, read_budget, read_state
from guardedllm.registry._inherit import explain_uncatalogued, inherit
from guardedllm.registry._layers import Layer, read_layers
from guardedllm.registry._model import Defaults, Deployment, ProviderConfig, Route
from guardedllm.registry._record import RecordConfig, read_record
from guardedllm.registry._resolve import deployments_of, follow_aliases
from guardedllm.registry._routes import read_route
from guardedllm.registry._tables import MODEL_FIELDS, read_defaults, read_model, read_provider

if TYPE_CHECKING:
    from guardedllm.guards.spend import SpendBudget

__all__ = ["Built", "Loaded", "load"]


@attrs.frozen(kw_only=True)
class Built:
    """The validated values of one view of the config, and where each field of each model
    came from (``origins``: model name -> field -> Origin)."""

    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, Deployment]
    aliases: Mapping[str, str]
    routes: Mapping[str, Route]
    defaults: Defaults
    budgets: tuple[SpendBudget, ...]
    state: StateConfig | None
    origins: Mapping[str, Mapping[str, Origin]]
    record: RecordConfig | None = None


@attrs.frozen(kw_only=True)
class Loaded:
    """The view asked for, and the names of every declared environment."""

    built: Built
    environments: tuple[str, ...]


def _check_aliases(layer: Layer, problems: Problems) -> dict[str, str]:
    callable_names = {*layer.models, *layer.routes, *layer.aliases}
    aliases: dict[str, str] = {}
    for name, (target, key) in layer.aliases.items():
        if not isinstance(target, str) or not target:
            problems.add(key, 'must be the name of a model, alias or route, like chat = "gpt-4o"')
            continue
        aliases[name] = target
        clash = "models" if name in layer.models else "routes" if name in layer.routes else None
        if clash:
            problems.add(
                key,
                f"has the same name as [{dotted(clash, name)}], so callers could not tell "
                "which they get: rename the alias",
            )
        elif target not in callable_names:
            problems.add(
                key,
                f"names {target!r}, which is not a model, alias or route"
                f"{did_you_mean(target, callable_names)}: fix the name or declare it",
            )
    reported: set[frozenset[str]] = set()
    for name in aliases:
        chain, cyclic = follow_aliases(name, aliases)
        if not cyclic:
            continue
        cycle = chain[chain.index(chain[-1]) : -1]
        if frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        # Show the cycle from the alias declared first, so the message does not depend on
        # which member the walk happened to start from.
        first = min(cycle, key=list(aliases).index)
        start = cycle.index(first)
        loop = [*cycle[start:], *cycle[:start], first]
        problems.add(
            layer.aliases[first][1],
            f"alias cycle {' -> '.join(loop)}: point one of them at a model or a route",
        )
    return aliases


def _resolve_fallback(
    table: Table, layer: Layer, aliases: Mapping[str, str], problems: Problems
) -> tuple[str, ...]:
    """The deployment names a route's fallback reaches. Checked even when other fields of the
    route are wrong, so that one run reports every problem."""
    written_names = table.values.get("fallback")
    if not isinstance(written_names, list) or not all(isinstance(n, str) for n in written_names):
        return ()  # read_route reports the type
    key = table.key_of("fallback")
    deployments: dict[str, str] = {}  # deployment -> the name the route wrote for it
    for written in written_names:
        chain, cyclic = follow_aliases(written, aliases)
        end = chain[-1]
        if cyclic or (written in aliases and end not in {*layer.models, *layer.routes}):
            continue  # the alias itself is reported broken
        if end in layer.routes:
            problems.add(
                key,
                f"{written!r} is a route; a fallback lists models (or aliases of models): "
                "list that route's models here instead",
            )
        elif end not in layer.models:
            problems.add(
                key,
                f"{written!r} is not a model or alias{did_you_mean(written, layer.models)}: "
                "fix the name or declare the model",
            )
        elif end in deployments:
            first = deployments[end]
            how = "" if first == written else f" (as {first!r} and {written!r})"
            problems.add(
                key,
                f"lists deployment {end!r} twice{how}: each deployment is tried once per "
                "route; remove the repeat (raise max_attempts to retry it)",
            )
        else:
            deployments[end] = written
    return tuple(deployments)


def _mentions(table: Table) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """The names a route table's rules, split and escalate_to mention, each with its key, and
    its shadow deployment; read from the raw table so that a route with other problems still
    has its names checked (``read_route`` reports the types)."""
    values = table.values
    mentioned: list[tuple[str, str]] = []
    rules = values.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict) and isinstance(rule.get("use"), str):
            mentioned.append((rule["use"], f"{table.key_of('rules')}[{index}].use"))
    split = values.get("split")
    for arm in split if isinstance(split, dict) else {}:
        mentioned.append((arm, dotted(table.key_of("split"), arm)))
    if isinstance(values.get("escalate_to"), str):
        mentioned.append((values["escalate_to"], table.key_of("escalate_to")))
    shadow = values.get("shadow")
    target = shadow.get("deployment") if isinstance(shadow, dict) else None
    key = dotted(table.key_of("shadow"), "deployment")
    return mentioned, ((target, key) if isinstance(target, str) else None)


def _check_references(layer: Layer, aliases: Mapping[str, str], problems: Problems) -> None:
    """Every name a route's rules, split, escalate_to and shadow mention must exist (the shadow
    must reach a model), and no route may reach itself through them."""
    callable_names = {*layer.models, *layer.routes, *aliases}
    reaches: dict[str, list[str]] = {}
    for name, table in layer.routes.items():
        mentioned, shadow = _mentions(table)
        reaches[name] = []
        for target, key in mentioned:
            if target not in callable_names:
                problems.add(
                    key,
                    f"names {target!r}, which is not a model, alias or route"
                    f"{did_you_mean(target, callable_names)}: fix the name or declare it",
                )
                continue
            end = follow_aliases(target, aliases)[0][-1]
            if end in layer.routes:
                reaches[name].append(end)
        if shadow is not None:
            end = follow_aliases(shadow[0], aliases)[0][-1]
            if end not in layer.models:
                problems.add(
                    shadow[1],
                    f"names {shadow[0]!r}, which is not a model (or an alias of one)"
                    f"{did_you_mean(shadow[0], layer.models)}: a shadow copies calls to one model",
                )
    reported: set[frozenset[str]] = set()
    for start in reaches:
        cycle = _find_cycle(start, reaches)
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        first = min(cycle, key=list(layer.routes).index)
        at = cycle.index(first)
        loop = [*cycle[at:], *cycle[:at], first]
        problems.add(
            layer.routes[first].key,
            f"route cycle {' -> '.join(loop)} (through rules, split or escalate_to): "
            "point one of them at models instead",
        )


def _find_cycle(start: str, reaches: Mapping[str, list[str]]) -> list[str] | None:
    """The routes of a cycle reachable from ``start``, in order, or None."""
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in on_path:
            return path[path.index(name) :]
        if name in done:
            return None
        path.append(name)
        on_path.add(name)
        for nxt in reaches.get(name, ()):
            found = visit(nxt)
            if found is not None:
                return found
        path.pop()
        on_path.discard(name)
        done.add(name)
        return None

    return visit(start)


def _check_rule_capabilities(
    layer: Layer,
    models: Mapping[str, Deployment | None],
    aliases: Mapping[str, str],
    routes: Mapping[str, Route],
    problems: Problems,
) -> None:
    """A rule that matches only calls needing some capabilities must lead somewhere that has
    them: otherwise every call it matches would be refused with NoRouteError."""
    known = {n: m for n, m in models.items() if m is not None}
    for name, route in routes.items():
        for index, rule in enumerate(route.rules):
            needed = rule.when.capabilities
            if not needed:
                continue
            try:
                reached = deployments_of(rule.use, known, aliases, routes)
            except ValueError:
                continue  # a name or cycle problem, reported where the name is
            if any(needed <= known[d].capabilities for d in reached):
                continue
            problems.add(
                f"{layer.routes[name].key}.rules[{index}].use",
                f"the rule matches calls that need {sorted(needed)}, but none of what "
                f"{rule.use!r} reaches ({', '.join(reached)}) declares them all, so every "
                "call it matches would be refused: send it to a deployment that has them, or "
                "declare them in its [models.NAME] capabilities",
            )


def _check_route_kinds(
    layer: Layer,
    models: Mapping[str, Deployment | None],
    aliases: Mapping[str, str],
    routes: Mapping[str, Route],
    problems: Problems,
) -> None:
    """Everything a route may send a call to answers the same kind of call: a chat call
    failed over to an embedding model (or the reverse) could only be refused. And embedding
    models of one route give vectors of one length: a fallback to another length would hand
    the caller vectors their index cannot compare with the ones it holds."""
    known = {n: m for n, m in models.items() if m is not None}
    for name in routes:
        try:
            reached = [known[d] for d in deployments_of(name, known, aliases, routes)]
        except (ValueError, KeyError):
            continue  # a name or cycle problem, reported where the name is
        key = layer.routes[name].key
        kinds = sorted({d.kind for d in reached})
        if len(kinds) > 1:
            problems.add(
                key,
                "mixes chat and embedding models ("
                + ", ".join(f"{d.name}: {d.kind}" for d in reached)
                + "), so some calls would reach a model that cannot answer them: keep chat "
                "and embedding models in separate routes",
            )
            continue
        embedding = [d for d in reached if d.is_embedding]
        dimensions = {d.dimensions for d in embedding}
        if len(embedding) > 1 and (len(dimensions) > 1 or None in dimensions):
            problems.add(
                key,
                "falls back among embedding models whose vectors differ in length ("
                + ", ".join(f"{d.name}: {d.dimensions or 'undeclared'}" for d in embedding)
                + "), which no index can mix: route only models of one `dimensions`, "
                "declaring it on each",
            )


def _kind_of(provider: Table) -> str | None:
    """A provider table's kind as written, even when the table has other problems: what its
    models' ids are checked against."""
    kind = provider.values.get("kind")
    return kind if isinstance(kind, str) else None


def _build(layer: Layer, problems: Problems) -> Built | None:
    """The values of ``layer``, or None when any check added a problem."""
    mine = Problems()
    providers = {name: read_provider(name, table, mine) for name, table in layer.providers.items()}
    kinds = {name: _kind_of(table) for name, table in layer.providers.items()}
    models: dict[str, Deployment | None] = {}
    origins: dict[str, Mapping[str, Origin]] = {}
    for name, table in layer.models.items():
        # The catalog fills what the entry leaves out before it is read: see _inherit.
        merged, origins[name] = inherit(table, kinds, tuple(MODEL_FIELDS))
        explain_uncatalogued(table, kinds, mine)
        models[name] = read_model(name, merged, kinds, mine)
    routes = {name: read_route(name, table, mine) for name, table in layer.routes.items()}
    defaults = read_defaults(layer.defaults, mine)
    aliases = _check_aliases(layer, mine)
    callable_names = {*layer.models, *layer.routes, *aliases}
    budgets = [
        read_budget(name, table, callable_names, mine) for name, table in layer.budgets.items()
    ]
    state = read_state(layer.state, mine) if layer.state is not None else None
    record = read_record(layer.record, mine) if layer.record is not None else None
    for name in layer.routes:
        if name in layer.models:
            mine.add(
                layer.routes[name].key,
                f"has the same name as [{dotted('models', name)}], so callers could not tell "
                "which they get: rename the route",
            )
    fallbacks = {
        name: _resolve_fallback(table, layer, aliases, mine) for name, table in layer.routes.items()
    }
    _check_references(layer, aliases, mine)
    if mine:  # a route's fallback may not have resolved
        problems.extend(mine)
        return None
    resolved = {
        n: attrs.evolve(r, fallback=fallbacks[n]) for n, r in routes.items() if r is not None
    }
    _check_rule_capabilities(layer, models, aliases, resolved, mine)
    _check_route_kinds(layer, models, aliases, resolved, mine)
    problems.extend(mine)
    if mine or defaults is None:
        return None
    return Built(
        providers={n: p for n, p in providers.items() if p is not None},
        models={n: m for n, m in models.items() if m is not None},
        aliases=aliases,
        routes=resolved,
        defaults=defaults,
        budgets=tuple(b for b in budgets if b is not None),
        state=state,
        record=record,
        origins=origins,
    )


def load(data: Mapping[str, Any], *, env: str | None, source: str | None) -> Loaded:
    """Validate every view of ``data`` and build the one ``env`` names (the base when None).

    Raises ConfigError listing every problem found in any view.
    """
    problems = Problems()
    layers = read_layers(data, problems)
    built = _build(layers.base, problems)
    base_keys = problems.keys()
    for name, layer in layers.envs.items():
        mine = Problems()
        view = _build(layer, mine)
        own = dotted("env", name) + "."
        for problem in mine:
            if problem.key.startswith(own):
                problems.extend([problem])
            elif problem.key not in base_keys and not problem.key.startswith("env."):
                # A base key that only breaks once this environment's overlay applies.
                problems.add(problem.key, f"in env {name!r}: {problem.message}")
        if name == env:
            built = view
    check_alias_coverage(layers, problems)
    environments = tuple(layers.envs)
    if env is not None and env not in layers.envs:
        known = ", ".join(environments) if environments else "none are declared"
        problems.add(
            "env",
            f"no environment named {env!r}{did_you_mean(env, environments)} (known: {known}): "
            f"declare [env.{env}.aliases] or pick a known one",
        )
    if problems or built is None:
        raise ConfigError(list(problems), source=source)
    return Loaded(built=built, environments=environments)
