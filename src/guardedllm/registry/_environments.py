"""Checks across environments: the staging/prod mismatch that turns into a 404 storm.

Two checks live here. ``check_alias_coverage`` runs at load time: an alias that some
``[env.NAME.aliases]`` tables define and another does not, with no top-level fallback, means
code that works in one environment gets "unknown model" in the next. ``compare_views`` is the
softer check ``guardedllm check --env staging --env prod`` runs: every callable name that
reaches a different vendor model (or provider) in one environment than in another. It is not a
load error (each environment is valid on its own), but ``check`` exits non-zero on it, since
that difference is exactly what broke production.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from guardedllm.errors import ConfigProblem
from guardedllm.registry._check import Problems, dotted

if TYPE_CHECKING:
    from guardedllm.registry._layers import Layers
    from guardedllm.registry._registry import Registry

__all__ = ["check_alias_coverage", "compare_views"]

_CALLABLE_SECTIONS = ("aliases", "routes", "models")


def check_alias_coverage(layers: Layers, problems: Problems) -> None:
    """Report each environment that lacks an alias other environments define per-environment."""
    top_level = set(layers.base.aliases)
    everywhere: dict[str, None] = {}
    for names in layers.env_aliases.values():
        everywhere.update(dict.fromkeys(names))
    for alias in everywhere:
        if alias in top_level:
            continue
        having = [env for env, names in layers.env_aliases.items() if alias in names]
        for env in layers.env_aliases:
            if alias not in layers.env_aliases[env]:
                problems.add(
                    dotted("env", env, "aliases", alias),
                    f"alias {alias!r} is defined for {', '.join(having)} but not for {env}, "
                    f"nor in [aliases]: add it to [{dotted('env', env, 'aliases')}] "
                    "(or to [aliases] for every environment)",
                )


def _target(registry: Registry, section: str, name: str) -> str | None:
    """What ``name`` reaches in ``registry``, as "vendor-id (provider), ...", or None."""
    if name not in getattr(registry, section):
        return None
    plan = registry.resolve(name).deployments
    return ", ".join(f"{d.model} ({d.provider})" for d in plan)


def compare_views(views: Sequence[tuple[str, Registry]]) -> list[ConfigProblem]:
    """Every alias, route and model that differs between the first view and another one."""
    problems: list[ConfigProblem] = []
    if len(views) < 2:
        return problems
    (first, reference), *others = views
    for section in _CALLABLE_SECTIONS:
        names: dict[str, None] = {}
        for _, registry in views:
            names.update(dict.fromkeys(getattr(registry, section)))
        for name in names:
            here = _target(reference, section, name)
            for env, registry in others:
                there = _target(registry, section, name)
                if here == there:
                    continue
                if here is None or there is None:
                    has, lacks = (env, first) if here is None else (first, env)
                    message = (
                        f"defined in {has} but missing in {lacks}: add it to "
                        f"[{dotted('env', lacks, section)}] or to [{section}]"
                    )
                else:
                    message = (
                        f"resolves to {here} in {first} but {there} in {env}; make the "
                        "environments agree unless the difference is intended"
                    )
                problems.append(ConfigProblem(key=dotted(section, name), message=message))
    return problems
