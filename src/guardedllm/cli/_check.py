"""``guardedllm check CONFIG [--env NAME ...] [--strict] [--max-catalog-age DAYS]``: validate a
config before it ships, its spend budgets and ``[state]`` store included (the store is not
contacted: ``smoke`` pings it).

Warnings are printed with their key and do not fail the check unless ``--strict``: a route
deployment no typical call can reach, a field that drifted from the model catalog (another
tokenizer, a larger window or output limit, another price), and with ``--max-catalog-age`` a
catalog older than that. A model id the catalog does not know is allowed: it is listed as
unchecked, and never fails the check.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterable, Sequence

from guardedllm.errors import ConfigError, ConfigProblem
from guardedllm.registry import (
    Registry,
    catalog_age_warning,
    catalog_warnings,
    unchecked_models,
)
from guardedllm.routing import route_warnings

__all__ = ["run_check"]


def _warnings_of(view: Registry) -> Iterable[ConfigProblem]:
    return (*route_warnings(view), *catalog_warnings(view))


def run_check(
    path: str,
    envs: Sequence[str],
    *,
    strict: bool = False,
    max_catalog_age: int | None = None,
    today: datetime.date | None = None,
) -> int:
    """Print every problem of the config at ``path`` (and of each environment), then every
    warning and unchecked model; 0 if no problem (and, with ``strict``, no warning).
    ``today`` (UTC today by default) dates the catalog for ``max_catalog_age``."""
    try:
        base = Registry.from_toml(path)
    except ConfigError as exc:
        print(f"guardedllm check: {exc}", file=sys.stderr)
        return 1
    problems: list[ConfigProblem] = []
    warnings = dict.fromkeys(_warnings_of(base))
    unchecked = dict.fromkeys(unchecked_models(base))
    # Every declared environment must load; the named ones are also compared with each other.
    for env in dict.fromkeys([*envs, *base.environments]):
        try:
            view = base.with_env(env)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            warnings.update(dict.fromkeys(_warnings_of(view)))
            unchecked.update(dict.fromkeys(unchecked_models(view)))
    if max_catalog_age is not None:
        stale = catalog_age_warning(max_catalog_age, today=today)
        if stale is not None:
            warnings[stale] = None
    if len(envs) >= 2 and not problems:
        problems.extend(base.compare_environments(list(dict.fromkeys(envs))))
    if problems:
        print(f"guardedllm check: {ConfigError(problems, source=path)}", file=sys.stderr)
        return 1
    if strict and warnings:
        _print_warnings(warnings)
        print(
            f"guardedllm check: {len(warnings)} warnings in {path} (--strict): fix each key "
            "listed above, or drop --strict to let warnings pass",
            file=sys.stderr,
        )
        return 1
    counts = (
        f"{len(base.providers)} providers, {len(base.models)} models, "
        f"{len(base.aliases)} aliases, {len(base.routes)} routes"
    )
    # Only when present, so that configs without them read as they always have.
    counts += f", {len(base.budgets)} budgets" if base.budgets else ""
    counts += f"; state store {base.state.url}" if base.state is not None else ""
    checked = f"; environments {', '.join(base.environments)}" if base.environments else ""
    compared = f"; {' and '.join(envs)} agree" if len(envs) >= 2 else ""
    warned = f"; {len(warnings)} warnings" if warnings else ""
    print(f"guardedllm check: {path}: ok ({counts}{checked}{compared}{warned})")
    for note in unchecked:
        print(f"guardedllm check: unchecked: {note.key}: {note.message}")
    _print_warnings(warnings)
    return 0


def _print_warnings(warnings: Iterable[ConfigProblem]) -> None:
    for warning in warnings:
        print(f"guardedllm check: warning: {warning.key}: {warning.message}", file=sys.stderr)
