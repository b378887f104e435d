"""Rebuild src/guardedllm/registry/catalog.toml from the model map LiteLLM ships in its package.

Facts only: the ids, limits, prices and capabilities are read from LiteLLM's
``model_prices_and_context_window_backup.json`` (MIT licence); nothing of LiteLLM's code is used
or copied, and litellm is not a dependency. Offline, from a wheel downloaded by hand:

    pip download litellm --no-deps -d /tmp/litellm && unzip -o /tmp/litellm/litellm-*.whl \\
        litellm/model_prices_and_context_window_backup.json -d /tmp/litellm
    python scripts/catalog_from_litellm.py \\
        /tmp/litellm/litellm/model_prices_and_context_window_backup.json \\
        --version 1.110.2 --date 2026-12-05

The models listed below are chosen by hand: chat and embedding models in current use, none
retired by the catalog's date, and for OpenAI only those whose tokenizer tiktoken knows. Review
the diff: a new model goes into a list below, a retired one comes out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import tiktoken

OUTPUT = Path(__file__).resolve().parent.parent / "src" / "guardedllm" / "registry" / "catalog.toml"

# vendor (provider kind), kind, and the alias of each model; its dated snapshots with the same
# facts are found in the map.
CHOSEN: list[tuple[str, str, list[str]]] = [
    (
        "openai",
        "chat",
        [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-5.1",
            "gpt-5.2",
            "gpt-5.4",
            "gpt-5.4-mini",
            "gpt-5.4-nano",
            "gpt-5.5",
            "gpt-5.6",
            "gpt-5.6-luna",
            "gpt-5.6-sol",
            "gpt-5.6-terra",
            "o3",
        ],
    ),
    (
        "openai",
        "embedding",
        ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"],
    ),
    (
        "azure-openai",
        "chat",
        [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-5.1",
            "gpt-5.2",
            "gpt-5.4",
            "gpt-5.4-mini",
            "gpt-5.4-nano",
            "gpt-5.5",
            "gpt-5.6",
            "gpt-5.6-luna",
            "gpt-5.6-sol",
            "gpt-5.6-terra",
        ],
    ),
    (
        "azure-openai",
        "embedding",
        ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"],
    ),
    (
        "anthropic",
        "chat",
        [
            "claude-haiku-4-5",
            "claude-opus-4-5",
            "claude-opus-4-6",
            "claude-opus-4-7",
            "claude-opus-4-8",
            "claude-opus-5",
            "claude-opus-5-5",
            "claude-sonnet-4-6",
            "claude-sonnet-5",
            "claude-sonnet-5-5",
            "claude-haiku-5-5",
            "claude-fable-5",
            "claude-fable-5-1",
            "claude-mythos-5",
            "claude-mythos-5-1",
        ],
    ),
    (
        "gemini",
        "chat",
        [
            "gemini-2.5-flash-lite",
            "gemini-3-flash-preview",
            "gemini-3.1-flash-lite",
            "gemini-3.1-pro-preview",
            "gemini-3.5-flash",
            "gemini-3.5-flash-lite",
            "gemini-3.6-flash",
            "gemini-3.7-flash",
            "gemini-3.8-flash",
            "gemini-4-argon",
            "gemini-4-hydrogen",
            "gemini-flash-latest",
            "gemini-flash-lite-latest",
            "gemini-pro-latest",
        ],
    ),
    ("gemini", "embedding", ["gemini-embedding-001", "gemini-embedding-2"]),
]

# How the map names each vendor's models.
PREFIX = {"openai": "", "azure-openai": "azure/", "anthropic": "", "gemini": "gemini/"}
DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})")
# What must agree for a dated snapshot to share its alias's entry.
FACTS = (
    "max_input_tokens",
    "max_output_tokens",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "output_cost_per_reasoning_token",
    "mode",
)
# For OpenAI's GPT-5 family the map's max_input_tokens is the window less the output limit
# (272,000 + 128,000 = 400,000 and 922,000 + 128,000 = 1,050,000, the windows OpenAI documents).
INPUT_SHARES = (272_000, 922_000)

HEADER = '''\
# The model catalog: facts about well-known vendor models that a [models.NAME] entry
# inherits when it names one of their ids (see docs/config.md#the-model-catalog), and that
# `guardedllm check` compares a config against. Data only: read once, when the first registry
# is built, never at import, never over the network.
#
# Each [[models]] entry:
#   vendor          the provider kind it applies to: openai, azure-openai, anthropic, gemini
#                   (an Azure entry matches a deployment named like the model)
#   kind            "chat" or "embedding" (embedding entries have no output limit or prices)
#   ids             the vendor's model ids, matched exactly: the alias and each dated snapshot
#                   with the same facts. A snapshot not listed is unchecked, never guessed: a
#                   new snapshot may count or cost differently.
#   tokenizer       a tiktoken encoding; tokenizer_exact = true when it is the vendor's own
#                   (tiktoken's own model map), false when it stands in (see [catalog])
#   context_window  tokens, input plus output; max_output_tokens: the most one reply may hold
#   *_usd_per_mtok  USD per million tokens: input, cached input (the prompt-cache read rate;
#                   the input price where the vendor gives no discount), output, and reasoning
#                   (the output price where the vendor bills reasoning tokens as output)
#   capabilities    tools (function calling), vision, json (structured output), reasoning,
#                   streaming (every chat model here streams)
#   source, date    where the facts were read and when; note: anything the numbers alone do
#                   not say
#
# Refreshing it: scripts/catalog_from_litellm.py rebuilds this file from a newer LiteLLM
# model map (it says how); `guardedllm check --max-catalog-age DAYS` tells when it is due.

[catalog]
date = {date}
source = "LiteLLM {version} model map (model_prices_and_context_window_backup.json, MIT)"
# How a stand-in tokenizer (tokenizer_exact = false: Claude and Gemini, whose tokenizers
# tiktoken does not have) is made safe: its count is scaled by a calibration factor learned
# per deployment from the vendor's reported prompt_tokens, plus a 10 % margin, and the
# estimate says it is not exact.
stand_in_calibration = """scaled by the factor learned from the vendor's reported usage \\
(1.0 until the first answer), plus guardedllm.defaults.ESTIMATE_SAFETY_MARGIN"""
'''


def per_mtok(per_token: float) -> float:
    return round(float(per_token) * 1_000_000, 6)


def snapshots(model_map: dict[str, Any], vendor: str, alias: str, date: str) -> list[str]:
    """The map's keys for ``alias`` and its dated snapshots with the same facts, not retired."""
    prefix = PREFIX[vendor]
    keys = [prefix + alias]
    keys += [
        k
        for k in model_map
        if k.startswith(prefix + alias) and DATED.fullmatch(k[len(prefix + alias) :])
    ]
    reference = {f: model_map[keys[0]].get(f) for f in FACTS}
    kept = []
    for key in keys:
        retired = model_map[key].get("deprecation_date")
        if retired and retired <= date:
            continue
        if {f: model_map[key].get(f) for f in FACTS} == reference:
            kept.append(key)
        else:
            print(f"{key}: other facts than {keys[0]}, left out", file=sys.stderr)
    return kept


def entry(
    model_map: dict[str, Any], vendor: str, kind: str, alias: str, *, version: str, date: str
) -> dict[str, Any]:
    keys = snapshots(model_map, vendor, alias, date)
    if not keys or keys[0] != PREFIX[vendor] + alias:
        raise SystemExit(f"{alias}: missing from the map, or retired by {date}")
    facts = model_map[keys[0]]
    if facts.get("mode") != kind:
        raise SystemExit(f"{alias}: the map says {facts.get('mode')!r}, not {kind!r}")
    notes = []
    exact = vendor in ("openai", "azure-openai")
    # tiktoken's own model map names OpenAI's encodings; Claude and Gemini get the stand-in.
    tokenizer = tiktoken.encoding_name_for_model(alias) if exact else "o200k_base"
    window = facts["max_input_tokens"]
    output = facts.get("max_output_tokens")
    if exact and alias.startswith("gpt-5") and window in INPUT_SHARES:
        notes.append(
            f"the source's max_input_tokens {window:,} is the window less the {output:,} "
            f"output tokens; the window is {window + output:,}"
        )
        window += output
    found: dict[str, Any] = {
        "vendor": vendor,
        "kind": kind,
        "ids": [k[len(PREFIX[vendor]) :] for k in keys],
        "tokenizer": tokenizer,
        "tokenizer_exact": exact,
        "context_window": window,
    }
    if kind == "chat":
        found["max_output_tokens"] = output
        found["input_usd_per_mtok"] = per_mtok(facts["input_cost_per_token"])
        cached = facts.get("cache_read_input_token_cost", facts["input_cost_per_token"])
        found["cached_input_usd_per_mtok"] = per_mtok(cached)
        found["output_usd_per_mtok"] = per_mtok(facts["output_cost_per_token"])
        reasoning = facts.get("output_cost_per_reasoning_token", facts["output_cost_per_token"])
        found["reasoning_usd_per_mtok"] = per_mtok(reasoning)
        capabilities = ["streaming"]
        for flag, capability in (
            ("supports_function_calling", "tools"),
            ("supports_vision", "vision"),
            ("supports_response_schema", "json"),
            ("supports_reasoning", "reasoning"),
        ):
            if facts.get(flag):
                capabilities.append(capability)
        found["capabilities"] = sorted(capabilities)
        tiers = sorted(
            {
                m[1]
                for k in facts
                if (m := re.fullmatch(r"input_cost_per_token_above_(\w+)_tokens", k))
            }
        )
        for tier in tiers:
            above_in = per_mtok(facts[f"input_cost_per_token_above_{tier}_tokens"])
            above_out = per_mtok(facts.get(f"output_cost_per_token_above_{tier}_tokens", 0))
            notes.append(
                f"prompts above {tier} tokens cost more (input {above_in:g}, output "
                f"{above_out:g} USD per million); these are the prices below it"
            )
    else:
        found["input_usd_per_mtok"] = per_mtok(facts["input_cost_per_token"])
        found["capabilities"] = []
    found["source"] = f"LiteLLM {version} model map: " + ", ".join(keys)
    found["date"] = date
    if notes:
        found["note"] = "; ".join(notes)
    return found


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 10_000:
        return f"{value:_}"
    return repr(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_map", type=Path, help="model_prices_and_context_window_backup.json")
    parser.add_argument("--version", required=True, help="the litellm version it came from")
    parser.add_argument("--date", required=True, help="YYYY-MM-DD: the day it was read")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    model_map = json.loads(args.model_map.read_text(encoding="utf-8"))
    lines = [HEADER.format(date=args.date, version=args.version).rstrip("\n"), ""]
    for vendor, kind, aliases in CHOSEN:
        lines += [f"# {'-' * 64} {vendor}, {kind}", ""]
        for alias in aliases:
            lines.append("[[models]]")
            for field, value in entry(
                model_map, vendor, kind, alias, version=args.version, date=args.date
            ).items():
                shown = value if field == "date" else toml_value(value)
                lines.append(f"{field} = {shown}")
            lines.append("")
    args.output.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
