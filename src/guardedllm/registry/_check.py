"""The kit for reading config tables while collecting every problem.

Loading never stops at the first mistake: each check adds a ``ConfigProblem`` (a dotted key and
a message saying what is wrong and what to do) to a ``Problems`` collector and carries on with
what it could read. A ``Table`` remembers, for each field, the key it was written under, so a
value an ``[env.NAME]`` overlay set is reported under the overlay's key, not the base one.

Messages never quote the value of a field that may hold a secret (``api_key_env``,
``base_url``, ``headers``), nor any value in a type error: a misplaced API key must not reach
an error message or a CI log. Names that refer to other tables (an alias's target, a model's
provider) are quoted, because the fix depends on seeing them.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import attrs

from guardedllm import defaults
from guardedllm.errors import ConfigProblem, scrub_secrets

__all__ = ["Field", "Problems", "Table", "did_you_mean", "dotted", "read_fields", "unknown_keys"]

# A TOML bare key; any other key part is quoted when shown, as TOML itself would need it.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted(key: str, *names: str) -> str:
    """``key`` (already dotted, or empty) extended by ``names``, each quoted when a TOML bare
    key could not spell it (``models."gpt-4.1".provider``)."""
    quoted = [n if _BARE_KEY.fullmatch(n) else _quote(n) for n in names]
    return ".".join([key, *quoted] if key else quoted)


def _quote(name: str) -> str:
    """``name`` as a TOML basic string: quote and backslash escaped, control characters
    (which TOML forbids raw) written as \\uXXXX."""
    chars = [
        "\\" + c if c in '"\\' else f"\\u{ord(c):04X}" if ord(c) < 0x20 or ord(c) == 0x7F else c
        for c in name
    ]
    return '"' + "".join(chars) + '"'


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choices, or an empty string."""
    close = difflib.get_close_matches(word, sorted(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


class Problems:
    """Problems in the order found, each reported once.

    Messages pass through ``scrub_secrets``: a message may quote a name from the config (an
    alias target, a provider name), and if someone pasted a key there it is masked anyway.
    """

    def __init__(self) -> None:
        self._items: dict[ConfigProblem, None] = {}

    def add(self, key: str, message: str) -> None:
        self._items.setdefault(
            ConfigProblem(key=scrub_secrets(key), message=scrub_secrets(message))
        )

    def extend(self, problems: Iterable[ConfigProblem]) -> None:
        for problem in problems:
            self._items.setdefault(problem)

    def keys(self) -> set[str]:
        return {p.key for p in self._items}

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ConfigProblem]:
        return iter(self._items)


@attrs.frozen(kw_only=True)
class Table:
    """One config table and, per field, the dotted key where its value was written."""

    key: str
    values: Mapping[str, Any]
    field_keys: Mapping[str, str] = attrs.field(factory=dict)

    def key_of(self, field: str) -> str:
        return self.field_keys.get(field) or dotted(self.key, field)

    def overlaid(self, overlay: Mapping[str, Any], overlay_key: str) -> Table:
        """This table with ``overlay``'s fields replacing its own, keyed where they came from."""
        field_keys = {f: self.key_of(f) for f in self.values}
        field_keys.update({f: dotted(overlay_key, f) for f in overlay})
        return Table(key=self.key, values={**self.values, **overlay}, field_keys=field_keys)


@attrs.frozen(kw_only=True)
class Field:
    """How one field of a table is read: its type, whether it is required, and how to fix it
    when missing (``hint``, e.g. ``'add provider = "NAME" naming a [providers.NAME] table'``)."""

    type: str  # "str" | "int" | "number" | "str_list" | "str_table" | "table" | "table_list"
    required: bool = False
    hint: str = ""


_TOML_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    list: "an array",
    dict: "a table",
}


# The largest whole number a config may hold: the largest a float (which the guards count in)
# holds exactly, 2**53.
_LARGEST_WHOLE = 2**53


def _type_name(value: Any) -> str:
    return _TOML_TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


def _read(field: Field, value: Any) -> tuple[Any, str | None]:
    """(the value, None) when it has the field's type; (None, what is wrong) otherwise."""
    got = _type_name(value)
    if field.type == "str":
        if not isinstance(value, str):
            return None, f"must be a string, got {got}: write it in double quotes"
        if not value.strip():
            return None, "must not be empty: give a value or remove the key"
        return value, None
    if field.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"must be a whole number, got {got}: write digits without quotes"
        if abs(value) > _LARGEST_WHOLE:  # every count, limit and size is far below it
            return None, f"is too large: write a whole number up to {_LARGEST_WHOLE:_}"
        return value, None
    if field.type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"must be a number, got {got}: write digits without quotes"
        try:
            number = float(value)  # a whole number too large for a float overflows here
        except OverflowError:
            return None, "is too large for a number: write a value below 1e308"
        if not math.isfinite(number):
            return None, "must be a finite number (not nan or inf)"
        return number, None
    if field.type == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f'must be an array of strings like ["a", "b"], got {got}'
        return tuple(value), None
    if field.type == "table":
        if not isinstance(value, dict):
            return None, f"must be a table like {{ key = value }}, got {got}"
        return dict(value), None
    if field.type == "table_list":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return None, f"must be an array of tables ([[...]] entries), got {got}"
        return list(value), None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None, f'must be a table of strings like {{ Name = "value" }}, got {got}'
    return dict(value), None


def read_fields(
    table: Table, spec: Mapping[str, Field], what: str, problems: Problems
) -> dict[str, Any]:
    """The fields of ``table`` that have the right type; every other finding is a problem.

    Unknown keys (typos) are reported with the closest known key; missing required fields with
    the field's hint; ``what`` names the table for messages ("model", "provider").
    """
    known = ", ".join(spec)
    for name in table.values:
        if name not in spec:
            problems.add(
                table.key_of(name),
                f"unknown key{did_you_mean(name, spec)}: fix its spelling or remove it "
                f"(a {what} takes: {known})",
            )
    for name, field in spec.items():
        if field.required and name not in table.values:
            hint = f": {field.hint}" if field.hint else ""
            problems.add(dotted(table.key, name), f"missing; every {what} needs it{hint}")
    read: dict[str, Any] = {}
    for name, field in spec.items():
        if name not in table.values:
            continue
        value, wrong = _read(field, table.values[name])
        if wrong is None:
            read[name] = value
        else:
            problems.add(table.key_of(name), wrong)
    return read


def unknown_keys(
    mapping: Mapping[str, Any], allowed: Collection[str], key: str, problems: Problems
) -> None:
    """Report keys of a structural table (top level, ``[env.NAME]``) that are not ``allowed``."""
    for name in mapping:
        if name not in allowed:
            problems.add(
                dotted(key, name),
                f"unknown key{did_you_mean(name, allowed)}: fix its spelling or remove it "
                f"(allowed here: {', '.join(allowed)})",
            )


def check_positive(
    read: dict[str, Any], table: Table, names: Collection[str], rule: str, problems: Problems
) -> None:
    """Each of ``names`` that ``read`` holds must be > 0; ``rule`` says what it is."""
    for name in names:
        value = read.get(name)
        if value is not None and not value > 0:
            problems.add(table.key_of(name), f"must be > 0, got {value:g}: {rule}")


def check_seconds(
    read: dict[str, Any], table: Table, names: Collection[str], rule: str, problems: Problems
) -> None:
    """``check_positive`` for a duration, which must also stay within ``MAX_SECONDS``."""
    check_positive(read, table, names, rule, problems)
    for name in names:
        value = read.get(name)
        if value is not None and value > defaults.MAX_SECONDS:
            problems.add(
                table.key_of(name),
                f"must be at most {defaults.MAX_SECONDS:g} seconds (a day), got {value:g}: {rule}",
            )
