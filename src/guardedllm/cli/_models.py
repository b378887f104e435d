"""``guardedllm models [--vendor KIND] [--json]``: the bundled model catalog a config inherits
from. The table shows one row per catalog entry (its first id, then how many more it matches);
``--json`` gives every field, in a shape scripts may rely on: ``{"catalog": {"date", "source",
"stand_in_calibration"}, "models": [{"vendor", "kind", "ids", "tokenizer", ...}, ...]}``."""

from __future__ import annotations

import json
from typing import Any

import attrs

from guardedllm.cli._table import format_table
from guardedllm.registry import CatalogEntry, load_catalog

__all__ = ["run_models"]

_HEADER = (
    "vendor",
    "model",
    "kind",
    "tokenizer",
    "context",
    "max out",
    "input",
    "cached",
    "output",
    "capabilities",
)


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _row(entry: CatalogEntry) -> list[str]:
    more = f" (+{len(entry.ids) - 1})" if len(entry.ids) > 1 else ""
    tokenizer = entry.tokenizer + ("" if entry.tokenizer_exact else " (stand-in)")
    return [
        entry.vendor,
        entry.ids[0] + more,
        entry.kind,
        tokenizer,
        f"{entry.context_window:,}",
        "-" if entry.max_output_tokens is None else f"{entry.max_output_tokens:,}",
        _price(entry.input_usd_per_mtok),
        _price(entry.cached_input_usd_per_mtok),
        _price(entry.output_usd_per_mtok),
        ",".join(sorted(entry.capabilities)) or "-",
    ]


def _as_json(entry: CatalogEntry) -> dict[str, Any]:
    fields = attrs.asdict(entry, recurse=False)
    fields["ids"] = list(entry.ids)
    fields["capabilities"] = sorted(entry.capabilities)
    fields["date"] = entry.date.isoformat()
    return fields


def run_models(*, vendor: str | None, as_json: bool) -> int:
    catalog = load_catalog()
    entries = catalog.vendor_entries(vendor)
    if as_json:
        document = {
            "catalog": {
                "date": catalog.date.isoformat(),
                "source": catalog.source,
                "stand_in_calibration": catalog.stand_in_calibration,
            },
            "models": [_as_json(e) for e in entries],
        }
        print(json.dumps(document, indent=2))
        return 0
    print(f"model catalog of {catalog.date.isoformat()}: {catalog.source}")
    print("prices in USD per million tokens; (+N): N more ids, `--json` lists them")
    print()
    print(format_table(_HEADER, [_row(e) for e in entries]))
    return 0
