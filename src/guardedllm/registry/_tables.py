"""Reading one entry of each config table into its value, checking the entry on its own.

Checks that need other tables (a model's provider exists, an alias's target exists, a route's
fallback resolves) belong to ``_load``. Each reader collects its entry's problems and returns
None when there were any, so a value is only ever built from a clean entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from guardedllm.errors import scrub_secrets
from guardedllm.providers.base import KEY_HEADERS
from guardedllm.registry._check import (
    Field,
    Problems,
    Table,
    check_positive,
    check_seconds,
    did_you_mean,
    dotted,
    read_fields,
)
from guardedllm.registry._http import (
    KEY_ADVICE,
    PATH_ID_KINDS,
    base_url_problem,
    header_name_problem,
    header_value_problem,
    path_id_problem,
)
from guardedllm.registry._model import (
    CAPABILITIES,
    DEFAULT_BASE_URLS,
    MODEL_KINDS,
    PROVIDER_KINDS,
    Defaults,
    Deployment,
    ProviderConfig,
    worst_call_usd,
    worst_call_usd_bound,
)

__all__ = [
    "ENV_VAR_NAME",
    "known_tokenizers",
    "looks_like_key",
    "read_defaults",
    "read_model",
    "read_provider",
]

_KINDS = ", ".join(sorted(PROVIDER_KINDS))

PROVIDER_FIELDS = {
    "kind": Field(type="str", required=True, hint=f'add kind = "openai" (one of: {_KINDS})'),
    "base_url": Field(type="str"),
    "api_key_env": Field(type="str"),
    "api_version": Field(type="str"),
    "headers": Field(type="str_table"),
    "timeout_s": Field(type="number"),
    "outcomes": Field(type="str_table"),
}

# What a status may be declared to mean for a call, in [providers.NAME.outcomes].
_VERDICTS = ("retry", "fallback", "fail")

MODEL_FIELDS = {
    "provider": Field(
        type="str", required=True, hint='add provider = "NAME" naming a [providers.NAME] table'
    ),
    "model": Field(type="str", required=True, hint='add model = "...", the vendor\'s model id'),
    "tokenizer": Field(
        type="str", required=True, hint='add tokenizer = "o200k_base" (a tiktoken encoding)'
    ),
    "context_window": Field(
        type="int", required=True, hint="add context_window = N, input plus output tokens"
    ),
    # Required of chat models only (``_CHAT_ONLY``): an embedding model has no output.
    "max_output_tokens": Field(type="int"),
    "input_usd_per_mtok": Field(
        type="number", required=True, hint="add the vendor's USD price per million input tokens"
    ),
    "output_usd_per_mtok": Field(type="number"),
    "cached_input_usd_per_mtok": Field(type="number"),
    "reasoning_usd_per_mtok": Field(type="number"),
    "capabilities": Field(type="str_list"),
    "rpm": Field(type="int"),
    "tpm": Field(type="int"),
    "kind": Field(type="str"),
    "dimensions": Field(type="int"),
    "max_batch_items": Field(type="int"),
}

# What a chat model needs that an embedding model has no use for, and how to add it.
_CHAT_ONLY = {
    "max_output_tokens": "add max_output_tokens = N from the vendor's model page",
    "output_usd_per_mtok": "add the vendor's USD price per million output tokens",
}

# What only an embedding model may declare.
_EMBEDDING_ONLY = ("dimensions", "max_batch_items")

DEFAULTS_FIELDS = {
    "deadline_s": Field(type="number"),
    "max_attempts": Field(type="int"),
    "timeout_s": Field(type="number"),
    "max_retry_after_s": Field(type="number"),
}

_PRICES = (
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "reasoning_usd_per_mtok",
)

# POSIX allows more, but every shell and CI system accepts exactly these names.
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_KEY_ADVICE = KEY_ADVICE


@cache
def known_tokenizers() -> frozenset[str]:
    """tiktoken's encoding names. Listing them reads no encoding file and downloads nothing."""
    import tiktoken

    return frozenset(str(name) for name in tiktoken.list_encoding_names())


def looks_like_key(value: str) -> bool:
    if scrub_secrets(value) != value or value.startswith(("sk-", "AIza")):
        return True
    # Long digit-and-letter strings without underscores are tokens, not variable names.
    return len(value) >= 32 and "_" not in value and any(c.isdigit() for c in value)


def read_provider(name: str, table: Table, problems: Problems) -> ProviderConfig | None:
    mine = Problems()
    read = read_fields(table, PROVIDER_FIELDS, "provider", mine)
    kind = read.get("kind")
    if kind is not None and kind not in PROVIDER_KINDS:
        mine.add(
            table.key_of("kind"),
            f"unknown provider kind{did_you_mean(kind, PROVIDER_KINDS)}: use one of {_KINDS}",
        )
        kind = None
    base_url = read.get("base_url")
    if base_url is None and kind is not None and kind not in DEFAULT_BASE_URLS:
        if "base_url" not in table.values:
            mine.add(
                dotted(table.key, "base_url"),
                f'missing; {kind} providers have no default URL: add base_url = "https://..."',
            )
    elif base_url is not None:
        wrong = (
            f"holds credentials: {_KEY_ADVICE}"
            if scrub_secrets(base_url) != base_url
            else base_url_problem(base_url)
        )
        if wrong is not None:
            mine.add(table.key_of("base_url"), wrong)
    if kind == "azure-openai" and "api_version" not in table.values:
        mine.add(
            dotted(table.key, "api_version"),
            'missing; Azure needs it: add api_version = "2024-10-21" (its api-version)',
        )
    elif kind in ("openai", "openai-compatible") and "api_version" in read:
        mine.add(
            table.key_of("api_version"),
            "only azure-openai (api-version), anthropic (anthropic-version) and gemini (the API "
            "version in the path) providers take it: remove it",
        )
    elif "api_version" in read and (wrong := path_id_problem(read["api_version"])):
        mine.add(table.key_of("api_version"), wrong.replace("the vendor's id", "the version"))
    key_env = read.get("api_key_env")
    if key_env is not None and not ENV_VAR_NAME.fullmatch(key_env):
        mine.add(
            table.key_of("api_key_env"),
            f"looks like an API key itself: {_KEY_ADVICE}"
            if looks_like_key(key_env)
            else "must be the name of an environment variable (letters, digits and "
            "underscores, not starting with a digit), like OPENAI_API_KEY",
        )
    elif key_env is not None and looks_like_key(key_env):
        mine.add(table.key_of("api_key_env"), f"looks like an API key itself: {_KEY_ADVICE}")
    for header, value in read.get("headers", {}).items():
        where = dotted(table.key_of("headers"), header)
        if header.lower() in KEY_HEADERS or looks_like_key(value):
            mine.add(where, f"carries a secret: {_KEY_ADVICE}")
        elif wrong := header_name_problem(header) or header_value_problem(value):
            mine.add(where, wrong)
    check_seconds(read, table, ["timeout_s"], "seconds one HTTP attempt may take", mine)
    verdicts: dict[int, str] = {}
    for status, verdict in read.get("outcomes", {}).items():
        where = dotted(table.key_of("outcomes"), status)
        if not status.isdigit() or not 400 <= int(status) <= 599:
            mine.add(where, 'must be an HTTP error status from 400 to 599, like "503" = "retry"')
        elif verdict not in _VERDICTS:
            mine.add(
                where, f"must be one of {', '.join(_VERDICTS)}{did_you_mean(verdict, _VERDICTS)}"
            )
        else:
            verdicts[int(status)] = verdict
    problems.extend(mine)
    if mine or kind is None:
        return None
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url or DEFAULT_BASE_URLS[kind],
        api_key_env=key_env,
        api_version=read.get("api_version"),
        headers=read.get("headers", {}),
        timeout_s=read.get("timeout_s"),
        outcomes=verdicts,
    )


def read_model(
    name: str, table: Table, providers: Mapping[str, str | None], problems: Problems
) -> Deployment | None:
    """A deployment; ``providers`` maps the name of every ``[providers.*]`` table to its kind
    (None when it names none it could be read from)."""
    mine = Problems()
    read = read_fields(table, MODEL_FIELDS, "model", mine)
    provider = read.get("provider")
    if provider is not None and provider not in providers:
        mine.add(
            table.key_of("provider"),
            f"names no [providers.*] table{did_you_mean(provider, providers)}: "
            f"add [{dotted('providers', provider)}] or use one of: {', '.join(providers)}",
        )
    slashes = PATH_ID_KINDS.get(providers.get(provider) or "") if provider else None
    if slashes is not None and "model" in read:
        wrong = path_id_problem(read["model"], slashes=slashes)
        if wrong is not None:
            mine.add(table.key_of("model"), wrong)
    tokenizer = read.get("tokenizer")
    tokenizers = known_tokenizers()
    if tokenizer is not None and tokenizer not in tokenizers:
        mine.add(
            table.key_of("tokenizer"),
            f"unknown tokenizer{did_you_mean(tokenizer, tokenizers)}: use a tiktoken encoding "
            f"({', '.join(sorted(tokenizers))}); for non-OpenAI models pick the closest one",
        )
    kind = read.setdefault("kind", "chat")
    if kind not in MODEL_KINDS:
        mine.add(
            table.key_of("kind"),
            f"unknown model kind{did_you_mean(kind, MODEL_KINDS)}: use "
            f"{' or '.join(map(repr, MODEL_KINDS))}",
        )
    elif kind == "chat":
        for field, hint in _CHAT_ONLY.items():
            if field not in read and field not in table.values:
                mine.add(dotted(table.key, field), f"missing; every model needs it: {hint}")
        for field in _EMBEDDING_ONLY:
            if field in read:
                mine.add(
                    table.key_of(field),
                    'only an embedding model has it: add kind = "embedding", or remove it',
                )
    else:
        for field in _CHAT_ONLY:
            if read.get(field):
                mine.add(
                    table.key_of(field),
                    "an embedding model produces no output tokens: remove it (or set it to 0)",
                )
        read["max_output_tokens"] = 0
        read["output_usd_per_mtok"] = 0.0
        check_positive(read, table, list(_EMBEDDING_ONLY), "a positive count, or remove it", mine)
    check_positive(
        read,
        table,
        ["context_window", "max_output_tokens"] if kind == "chat" else ["context_window"],
        "a count of tokens from the vendor's model page",
        mine,
    )
    check_positive(read, table, ["rpm", "tpm"], "a per-minute limit, or remove it", mine)
    window, max_output = read.get("context_window"), read.get("max_output_tokens")
    if window is not None and max_output is not None and 0 < window < max_output:
        mine.add(
            table.key_of("context_window"),
            f"is smaller than max_output_tokens ({max_output}): the window holds input and "
            "output, so check both numbers against the vendor's model page",
        )
    for price in _PRICES:
        value = read.get(price)
        if value is not None and value < 0:
            mine.add(
                table.key_of(price),
                f"must be >= 0, got {value:g}: a price in USD per million tokens",
            )
    priced = all(read.get(p) is not None for p in _PRICES[:2])
    if priced and window and max_output and window > 0 and max_output > 0:
        _check_worst_call(read, table, mine)  # negative prices, already reported, weigh less
    for capability in read.get("capabilities", ()):
        if capability not in CAPABILITIES:
            mine.add(
                table.key_of("capabilities"),
                f"unknown capability{did_you_mean(capability, CAPABILITIES)}: "
                f"use only {', '.join(sorted(CAPABILITIES))}",
            )
    problems.extend(mine)
    if mine:
        return None
    return Deployment(name=name, **read)


def _check_worst_call(read: dict[str, Any], table: Table, problems: Problems) -> None:
    """One call's worst case must be a sum the spend ledger can count: a price off by a factor
    of a million passes every other check and then fails the first budgeted call."""
    prices = {p: read[p] for p in _PRICES if read.get(p) is not None}
    window, output = read["context_window"], read["max_output_tokens"]
    worst = worst_call_usd(context_window=window, max_output_tokens=output, **prices)
    bound = worst_call_usd_bound()
    if worst <= bound:
        return
    # Reported at the price that weighs most in the worst case: the one likely off.
    weight = {p: (window if "input" in p else output) * rate for p, rate in prices.items()}
    problems.add(
        table.key_of(max(weight, key=weight.__getitem__)),
        f"makes one call's worst case ${worst:,.0f} (context_window x input price + "
        f"max_output_tokens x output price), more than the ${bound:,.0f} a spend budget can "
        "count: give prices in USD per million tokens, as the vendor's price page does",
    )


def read_defaults(table: Table, problems: Problems) -> Defaults | None:
    mine = Problems()
    read = read_fields(table, DEFAULTS_FIELDS, "[defaults] table", mine)
    check_seconds(read, table, ["deadline_s"], "seconds a whole call may take", mine)
    check_positive(read, table, ["max_attempts"], "attempts per deployment, at least 1", mine)
    check_seconds(read, table, ["timeout_s"], "seconds one HTTP attempt may take", mine)
    check_seconds(
        read,
        table,
        ["max_retry_after_s"],
        "the longest wait a vendor's Retry-After may impose on a deployment, in seconds",
        mine,
    )
    problems.extend(mine)
    if mine:
        return None
    return Defaults(**read)
