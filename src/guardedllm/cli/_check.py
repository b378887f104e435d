"""``guardedllm check CONFIG [--env NAME ...]``: validate a config before it ships, its spend
budgets and ``[state]`` store included (the store is not contacted: ``smoke`` pings it)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from guardedllm.errors import ConfigError, ConfigProblem
from guardedllm.registry import Registry

__all__ = ["run_check"]


def run_check(path: str, envs: Sequence[str]) -> int:
    """Print every problem of the config at ``path`` (and of each environment); 0 if none."""
    try:
        base = Registry.from_toml(path)
    except ConfigError as exc:
        print(f"guardedllm check: {exc}", file=sys.stderr)
        return 1
    problems: list[ConfigProblem] = []
    # Every declared environment must load; the named ones are also compared with each other.
    for env in dict.fromkeys([*envs, *base.environments]):
        try:
            base.with_env(env)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if len(envs) >= 2 and not problems:
        problems.extend(base.compare_environments(list(dict.fromkeys(envs))))
    if problems:
        print(f"guardedllm check: {ConfigError(problems, source=path)}", file=sys.stderr)
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
    print(f"guardedllm check: {path}: ok ({counts}{checked}{compared})")
    return 0
