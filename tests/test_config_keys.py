"""docs/config-keys.md lists exactly the keys the loader accepts, with their types and whether
they are required, read from the loader's own tables: the page cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from guardedllm.registry._check import Field
from guardedllm.registry._fleet import BUDGET_FIELDS, STATE_FIELDS
from guardedllm.registry._layers import _OVERLAY_SECTIONS, _TOP_SECTIONS
from guardedllm.registry._record import RECORD_FIELDS
from guardedllm.registry._routes import (
    CONDITION_FIELDS,
    ROUTE_FIELDS,
    RULE_FIELDS,
    SHADOW_FIELDS,
)
from guardedllm.registry._tables import DEFAULTS_FIELDS, MODEL_FIELDS, PROVIDER_FIELDS

PAGE = Path(__file__).resolve().parent.parent / "docs" / "config-keys.md"

# The sections of the page, by heading, and the loader's table of each.
TABLES: dict[str, Mapping[str, Field]] = {
    "Top level": {name: Field(type="table") for name in _TOP_SECTIONS},
    "`[defaults]`": DEFAULTS_FIELDS,
    "`[providers.NAME]`": PROVIDER_FIELDS,
    "`[models.NAME]`": MODEL_FIELDS,
    "`[routes.NAME]`": ROUTE_FIELDS,
    "`[[routes.NAME.rules]]`": RULE_FIELDS,
    "`when = {...}` of a rule": CONDITION_FIELDS,
    "`shadow = {...}` of a route": SHADOW_FIELDS,
    "`[budgets.NAME]`": BUDGET_FIELDS,
    "`[state]`": STATE_FIELDS,
    "`[record]`": RECORD_FIELDS,
    "`[env.NAME]`": {name: Field(type="table") for name in _OVERLAY_SECTIONS},
}

TYPE_NAMES = {
    "str": "string",
    "int": "integer",
    "number": "number",
    "str_list": "array of strings",
    "str_table": "table of strings",
    "table": "table",
    "table_list": "array of tables",
}


def documented(text: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Heading -> key -> (type, required) as the page's tables give them."""
    sections: dict[str, dict[str, tuple[str, str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = {}
            continue
        row = re.match(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \|", line)
        if row and heading is not None:
            key, type_, required = row[1], row[2].strip(), row[3].strip()
            assert key not in sections[heading], f"{heading}: {key} listed twice"
            sections[heading][key] = (type_, required)
    return sections


def mismatches(text: str, heading: str) -> list[str]:
    """How the page's table under ``heading`` differs from the loader's."""
    page = documented(text)[heading]
    fields = TABLES[heading]
    found = [f"missing from the page: {key}" for key in fields if key not in page]
    found += [f"refused by the loader: {key}" for key in page if key not in fields]
    for key, field in fields.items():
        if key not in page:
            continue
        type_, required = page[key]
        if type_ != TYPE_NAMES[field.type]:
            found.append(f"{key}: type {type_!r}, the loader reads {TYPE_NAMES[field.type]!r}")
        if required.startswith("yes") != field.required:
            found.append(f"{key}: required {required!r}, the loader says {field.required}")
    return found


def test_the_page_has_a_section_per_table_of_the_loader() -> None:
    assert set(TABLES) <= set(documented(PAGE.read_text(encoding="utf-8")))


@pytest.mark.parametrize("heading", list(TABLES))
def test_every_key_the_loader_accepts_is_documented_and_no_other(heading: str) -> None:
    assert mismatches(PAGE.read_text(encoding="utf-8"), heading) == []


def test_a_key_missing_from_the_page_is_found() -> None:
    text = PAGE.read_text(encoding="utf-8")
    dropped = text.replace("| `tpm` | integer | no |", "| per-minute tokens | integer | no |")
    assert mismatches(dropped, "`[models.NAME]`") == ["missing from the page: tpm"]
    retyped = text.replace("| `rpm` | integer | no |", "| `rpm` | number | yes |")
    assert mismatches(retyped, "`[models.NAME]`") == [
        "rpm: type 'number', the loader reads 'integer'",
        "rpm: required 'yes', the loader says False",
    ]
