"""The bundled model catalog: its shape, and what a [models.NAME] entry inherits from it."""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import Any

import pytest
import tiktoken

from guardedllm.errors import ArgumentError, ModelNotFoundError
from guardedllm.estimate._encodings import BUNDLED_ENCODINGS
from guardedllm.registry import CAPABILITIES, Deployment, Registry, load_catalog
from guardedllm.registry._catalog import CATALOG_VENDORS, INHERITED_FIELDS, parse_catalog
from guardedllm.registry._tables import MODEL_FIELDS

from ._configs import load_problems

CATALOG = load_catalog()
ENTRIES = CATALOG.entries
CHAT = [e for e in ENTRIES if e.kind == "chat"]


def _name(entry: Any) -> str:
    return f"{entry.vendor}:{entry.ids[0]}"


# --------------------------------------------------------------------------- the data file


def test_the_catalog_is_dated_and_sourced() -> None:
    assert CATALOG.date == datetime.date(2026, 12, 5)
    assert "LiteLLM 1.110.2" in CATALOG.source
    assert "ESTIMATE_SAFETY_MARGIN" in CATALOG.stand_in_calibration
    assert {e.vendor for e in ENTRIES} == CATALOG_VENDORS
    assert {e.kind for e in ENTRIES} == {"chat", "embedding"}
    for vendor in ("openai", "azure-openai", "gemini"):
        assert any(e.kind == "embedding" for e in CATALOG.vendor_entries(vendor)), vendor


@pytest.mark.parametrize("entry", ENTRIES, ids=_name)
def test_every_entry_is_complete(entry: Any) -> None:
    assert entry.ids, "an entry matches at least one id"
    assert entry.source.startswith("LiteLLM 1.110.2 model map: ")
    assert entry.date <= CATALOG.date
    assert entry.context_window > 0
    assert entry.input_usd_per_mtok >= 0
    assert entry.capabilities <= CAPABILITIES
    if entry.kind == "chat":
        fields = entry.config_values()
        assert set(fields) == set(INHERITED_FIELDS), "a chat entry supplies every field"
        assert "streaming" in entry.capabilities
        # What a deployment inherits must be a deployment the registry accepts.
        Deployment(name="x", provider="p", model=entry.ids[0], **fields)
    else:
        assert entry.max_output_tokens is None
        assert entry.output_usd_per_mtok is None
        assert entry.capabilities == frozenset()


@pytest.mark.parametrize("entry", ENTRIES, ids=_name)
def test_tokenizers_are_bundled_and_the_vendors_own_where_tiktoken_has_it(entry: Any) -> None:
    # Bundled: estimates never download an encoding, and work on an air-gapped host.
    assert entry.tokenizer in BUNDLED_ENCODINGS
    if entry.vendor in ("openai", "azure-openai"):
        assert entry.tokenizer_exact
        for model_id in entry.ids:
            assert tiktoken.encoding_name_for_model(model_id) == entry.tokenizer, model_id
    else:
        # Claude and Gemini: tiktoken has no tokenizer of theirs; the stand-in is calibrated
        # as [catalog] stand_in_calibration says.
        assert not entry.tokenizer_exact


def test_ids_are_unambiguous() -> None:
    seen: dict[tuple[str, str], str] = {}
    for entry in ENTRIES:
        for model_id in entry.ids:
            assert (entry.vendor, model_id) not in seen, model_id
            seen[(entry.vendor, model_id)] = entry.ids[0]
            assert CATALOG.lookup(entry.vendor, model_id) is entry
    # A second entry claiming an id is refused when the catalog is read.
    text = _catalog_text(ids_a='["m-1", "m-1-2026-01-01"]', ids_b='["m-1-2026-01-01"]')
    with pytest.raises(ValueError, match="'m-1-2026-01-01' is listed by two catalog entries"):
        parse_catalog(text)
    # The same id under two vendors is two models.
    text = _catalog_text(ids_a='["m-1"]', ids_b='["m-1"]', vendor_b="gemini")
    assert parse_catalog(text).lookup("gemini", "m-1") is not None


def _catalog_text(*, ids_a: str, ids_b: str, vendor_b: str = "openai") -> str:
    entry = """
[[models]]
vendor = "{vendor}"
kind = "chat"
ids = {ids}
tokenizer = "o200k_base"
tokenizer_exact = true
context_window = 1000
max_output_tokens = 100
input_usd_per_mtok = 1
output_usd_per_mtok = 2
source = "test"
date = 2026-12-01
"""
    return (
        '[catalog]\ndate = 2026-12-05\nsource = "test"\nstand_in_calibration = "none"\n'
        + entry.format(vendor="openai", ids=ids_a)
        + entry.format(vendor=vendor_b, ids=ids_b)
    )


def test_a_snapshot_is_matched_only_when_listed() -> None:
    assert CATALOG.lookup("openai", "gpt-4o-2024-08-06") is CATALOG.lookup("openai", "gpt-4o")
    # gpt-4o-2024-05-13 had other prices and a 4,096-token output limit: never guessed.
    assert CATALOG.lookup("openai", "gpt-4o-2024-05-13") is None
    assert CATALOG.lookup("openai-compatible", "gpt-4o") is None


def test_the_catalog_is_read_once_and_not_at_import() -> None:
    assert load_catalog() is CATALOG
    code = (
        "import guardedllm, guardedllm.registry._catalog as c\n"
        "print(c.load_catalog.cache_info().currsize)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "0"


def test_inherited_fields_are_model_fields() -> None:
    assert set(INHERITED_FIELDS) <= set(MODEL_FIELDS)


# --------------------------------------------------------------------------- inheritance

PROVIDERS = {
    "openai": {"kind": "openai"},
    "anthropic": {"kind": "anthropic"},
    "azure": {
        "kind": "azure-openai",
        "base_url": "https://contoso.openai.azure.com",
        "api_version": "2024-10-21",
    },
    "local": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:8000/v1"},
}


def registry_of(models: dict[str, Any], **more: Any) -> Registry:
    return Registry.from_dict({"providers": PROVIDERS, "models": models, **more})


def test_a_catalogued_model_needs_only_its_provider_and_id() -> None:
    registry = registry_of({"mini": {"provider": "openai", "model": "gpt-4o-mini-2024-07-18"}})
    mini = registry.models["mini"]
    assert (mini.tokenizer, mini.context_window, mini.max_output_tokens) == (
        "o200k_base",
        128_000,
        16_384,
    )
    assert (mini.input_usd_per_mtok, mini.cached_input_usd_per_mtok) == (0.15, 0.075)
    assert (mini.output_usd_per_mtok, mini.reasoning_usd_per_mtok) == (0.6, 0.6)
    # Capabilities too: leaving them out no longer means "none".
    assert mini.capabilities == {"tools", "vision", "json", "streaming"}


def test_what_the_config_sets_overrides_the_catalog_and_provenance_says_so() -> None:
    registry = registry_of(
        {
            "claude": {
                "provider": "anthropic",
                "model": "claude-sonnet-4-6",
                "input_usd_per_mtok": 2.5,
                "capabilities": ["tools"],
                "rpm": 50,
            }
        }
    )
    claude = registry.models["claude"]
    assert claude.input_usd_per_mtok == 2.5
    assert claude.output_usd_per_mtok == 15.0  # inherited
    assert claude.capabilities == {"tools"}
    entry = CATALOG.lookup("anthropic", "claude-sonnet-4-6")
    assert entry is not None
    assert str(registry.provenance("models.claude.input_usd_per_mtok")) == (
        "config (models.claude.input_usd_per_mtok)"
    )
    inherited = registry.provenance("models.claude.output_usd_per_mtok")
    assert (inherited.source, inherited.entry) == ("catalog", entry)
    assert str(inherited) == ("catalog (2026-12-05, LiteLLM 1.110.2 model map: claude-sonnet-4-6)")
    assert registry.provenance("models.claude.tpm").source == "default"
    assert registry.origins("claude")["rpm"].key == "models.claude.rpm"


def test_provenance_refuses_keys_it_cannot_answer() -> None:
    registry = registry_of({"gpt-4.1": {"provider": "openai", "model": "gpt-4.1"}})
    assert registry.provenance('models."gpt-4.1".tokenizer').source == "catalog"
    with pytest.raises(ArgumentError, match=r"models\.NAME\.FIELD"):
        registry.provenance("models.gpt-4.1.colour")
    with pytest.raises(ArgumentError, match=r"models\.NAME\.FIELD"):
        registry.provenance("routes.x.fallback")
    with pytest.raises(ModelNotFoundError):
        registry.provenance("models.nope.tokenizer")


def test_an_overlay_overrides_an_inherited_field_under_its_own_key() -> None:
    registry = registry_of(
        {"mini": {"provider": "openai", "model": "gpt-4o-mini"}},
        env={"prod": {"models": {"mini": {"max_output_tokens": 4096}}}},
    )
    assert registry.models["mini"].max_output_tokens == 16_384
    prod = registry.with_env("prod")
    assert prod.models["mini"].max_output_tokens == 4096
    assert str(prod.provenance("models.mini.max_output_tokens")) == (
        "config (env.prod.models.mini.max_output_tokens)"
    )
    assert prod.provenance("models.mini.context_window").source == "catalog"


def test_an_overlay_that_changes_the_id_inherits_the_new_models_facts() -> None:
    registry = registry_of(
        {"chat": {"provider": "openai", "model": "gpt-4o-mini"}},
        env={"prod": {"models": {"chat": {"model": "gpt-4.1"}}}},
    )
    assert registry.models["chat"].context_window == 128_000
    assert registry.with_env("prod").models["chat"].context_window == 1_047_576


def test_an_azure_deployment_named_like_its_model_inherits() -> None:
    registry = registry_of({"az": {"provider": "azure", "model": "gpt-4o"}})
    assert registry.models["az"].input_usd_per_mtok == 2.5


def test_an_openai_compatible_server_inherits_nothing() -> None:
    problems = load_problems(
        {"providers": PROVIDERS, "models": {"m": {"provider": "local", "model": "gpt-4o"}}}
    )
    assert "models.m.tokenizer" in problems
    assert "models.m.model" not in problems  # the catalog does not cover such servers


def test_an_unknown_id_is_explained_once_with_the_fields_it_lacks() -> None:
    data = {
        "providers": PROVIDERS,
        "models": {"m": {"provider": "openai", "model": "gpt-4o-mni", "tokenizer": "o200k_base"}},
    }
    problems = load_problems(data)
    [message] = problems["models.m.model"]
    assert message.startswith("'gpt-4o-mni' is not in the model catalog for openai providers")
    assert "did you mean 'gpt-4o-mini'" in message
    assert "so context_window, max_output_tokens, input_usd_per_mtok, output_usd_per_mtok " in (
        message
    )
    assert problems["models.m.context_window"][0].startswith("missing; every model needs it")


def test_checks_see_the_inherited_values() -> None:
    # An output limit above the inherited window is refused, as if both were written out.
    problems = load_problems(
        {
            "providers": PROVIDERS,
            "models": {
                "m": {"provider": "openai", "model": "gpt-4o", "max_output_tokens": 200_000}
            },
        }
    )
    assert list(problems) == ["models.m.context_window"]
    assert "is smaller than max_output_tokens (200000)" in problems["models.m.context_window"][0]


def test_a_registry_built_in_code_says_so() -> None:
    built = registry_of({"mini": {"provider": "openai", "model": "gpt-4o-mini"}})
    by_hand = Registry(providers=built.providers, models=built.models)
    assert by_hand.provenance("models.mini.tokenizer").source == "code"
    assert str(by_hand.provenance("models.mini.tokenizer")) == "code"
