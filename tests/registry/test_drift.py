"""Drift between a config and the model catalog, as ``guardedllm check`` reports it."""

from __future__ import annotations

import datetime
from typing import Any

from guardedllm.registry import (
    Registry,
    catalog_age_warning,
    catalog_warnings,
    load_catalog,
    unchecked_models,
)

PROVIDERS = {
    "openai": {"kind": "openai"},
    "anthropic": {"kind": "anthropic"},
    "local": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:8000/v1"},
}

# gpt-4o-mini written out in full, as configs were before the catalog: it agrees with it.
MINI = {
    "provider": "openai",
    "model": "gpt-4o-mini-2024-07-18",
    "tokenizer": "o200k_base",
    "context_window": 128000,
    "max_output_tokens": 16384,
    "input_usd_per_mtok": 0.15,
    "output_usd_per_mtok": 0.60,
    "cached_input_usd_per_mtok": 0.075,
}


def registry_of(models: dict[str, Any], **more: Any) -> Registry:
    return Registry.from_dict({"providers": PROVIDERS, "models": models, **more})


def warnings_of(registry: Registry) -> dict[str, str]:
    return {w.key: w.message for w in catalog_warnings(registry)}


def test_a_config_that_agrees_with_the_catalog_has_no_warning() -> None:
    assert warnings_of(registry_of({"mini": MINI})) == {}
    assert warnings_of(registry_of({"mini": {"provider": "openai", "model": "gpt-4o"}})) == {}


def test_another_familys_tokenizer_is_the_seeds_failure() -> None:
    # gpt-4o kept the cl100k_base of the gpt-4 it replaced: every count off.
    registry = registry_of({"chat": {**MINI, "model": "gpt-4o", "tokenizer": "cl100k_base"}})
    warnings = warnings_of(registry)
    message = warnings.pop("models.chat.tokenizer")
    assert message.startswith(
        "is 'cl100k_base', but 'gpt-4o' counts with 'o200k_base' per the model catalog "
        "(2026-12-05, LiteLLM 1.110.2 model map: gpt-4o, "
    )
    assert "tpm limits and costs would be counted with another model's tokenizer" in message
    # gpt-4o's prices differ from the mini's written here: each is its own warning.
    assert set(warnings) == {
        "models.chat.input_usd_per_mtok",
        "models.chat.output_usd_per_mtok",
        "models.chat.cached_input_usd_per_mtok",
    }


def test_a_stand_in_tokenizer_is_named_as_one() -> None:
    claude = {"provider": "anthropic", "model": "claude-sonnet-4-6", "tokenizer": "cl100k_base"}
    message = warnings_of(registry_of({"claude": claude}))["models.claude.tokenizer"]
    assert "'claude-sonnet-4-6' is estimated with the stand-in 'o200k_base'" in message


def test_limits_above_the_catalogs_warn_and_below_do_not() -> None:
    above = {**MINI, "context_window": 200_000, "max_output_tokens": 32_768}
    warnings = warnings_of(registry_of({"mini": above}))
    assert set(warnings) == {"models.mini.context_window", "models.mini.max_output_tokens"}
    assert warnings["models.mini.context_window"].startswith(
        "is 200,000, above the 128,000 of 'gpt-4o-mini-2024-07-18' per the model catalog"
    )
    below = {**MINI, "context_window": 64_000, "max_output_tokens": 4_096}
    assert warnings_of(registry_of({"mini": below})) == {}


def test_a_price_that_differs_warns_under_the_key_that_set_it() -> None:
    registry = registry_of(
        {"mini": MINI},
        env={"prod": {"models": {"mini": {"output_usd_per_mtok": 0.5}}}},
    )
    assert warnings_of(registry) == {}
    prod = warnings_of(registry.with_env("prod"))
    assert list(prod) == ["env.prod.models.mini.output_usd_per_mtok"]
    assert prod["env.prod.models.mini.output_usd_per_mtok"].startswith(
        "is 0.5 USD per million tokens, but 'gpt-4o-mini-2024-07-18' costs 0.6 per the model "
        "catalog"
    )


def test_unknown_ids_are_unchecked_not_warned() -> None:
    registry = registry_of(
        {
            "mini": MINI,
            "old": {**MINI, "model": "gpt-4o-mini-2023-01-01", "tokenizer": "cl100k_base"},
            "llama": {**MINI, "provider": "local", "model": "llama3.2"},
        }
    )
    assert warnings_of(registry) == {}
    notes = {n.key: n.message for n in unchecked_models(registry)}
    assert notes == {
        "models.old.model": "'gpt-4o-mini-2023-01-01' is not in the model catalog for openai "
        "providers: its tokenizer, limits and prices are used as written, unchecked",
        "models.llama.model": "'llama3.2' is served by an openai-compatible provider, which the "
        "model catalog does not cover: its tokenizer, limits and prices are used as written, "
        "unchecked",
    }


def test_an_old_catalog_warns_past_the_age_allowed() -> None:
    dated = load_catalog().date
    assert catalog_age_warning(30, today=dated + datetime.timedelta(days=30)) is None
    stale = catalog_age_warning(30, today=dated + datetime.timedelta(days=31))
    assert stale is not None
    assert stale.key == "(catalog)"
    assert stale.message.startswith(
        "the model catalog is dated 2026-12-05, 31 days ago, older than the 30 days allowed"
    )
