"""Embedding models in the registry: ``kind = "embedding"``, no output limit or price, the
catalog's embedding entries inherited, and routes that would mix kinds or vector lengths
refused at load time (what ``guardedllm check`` reports)."""

from __future__ import annotations

import pytest

from guardedllm import Registry
from guardedllm.errors import ArgumentError, ConfigError
from guardedllm.registry import Deployment
from guardedllm.registry._catalog import load_catalog

PROVIDERS = """
[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[providers.azure]
kind = "azure-openai"
base_url = "https://example.openai.azure.com"
api_key_env = "AZURE_KEY"
api_version = "2024-10-21"

[providers.gemini]
kind = "gemini"
api_key_env = "GEMINI_API_KEY"
"""


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        Registry.from_toml_text(PROVIDERS + text)
    return {p.key: p.message for p in info.value.problems}


def test_catalog_embedding_entries_load_with_only_provider_and_model() -> None:
    entries = [e for e in load_catalog().entries if e.kind == "embedding"]
    assert entries
    provider = {"openai": "openai", "azure-openai": "azure", "gemini": "gemini"}
    tables = "".join(
        f'[models.m{i}]\nprovider = "{provider[e.vendor]}"\nmodel = "{e.ids[0]}"\n\n'
        for i, e in enumerate(entries)
    )
    registry = Registry.from_toml_text(PROVIDERS + tables)
    for i, entry in enumerate(entries):
        deployment = registry.models[f"m{i}"]
        assert deployment.kind == "embedding"
        assert deployment.max_output_tokens == 0
        assert deployment.output_usd_per_mtok == 0.0
        assert deployment.context_window == entry.context_window
        assert deployment.input_usd_per_mtok == entry.input_usd_per_mtok
        assert registry.origins(f"m{i}")["kind"].source == "catalog"


def test_an_uncatalogued_embedding_model_needs_no_output_fields() -> None:
    registry = Registry.from_toml_text(
        PROVIDERS
        + """
[models.e]
provider = "openai"
model = "my-embedder"
kind = "embedding"
tokenizer = "cl100k_base"
context_window = 512
input_usd_per_mtok = 0.01
dimensions = 384
max_batch_items = 64
"""
    )
    e = registry.models["e"]
    assert (e.kind, e.dimensions, e.max_batch_items) == ("embedding", 384, 64)


def test_embedding_fields_are_checked() -> None:
    problems = problems_of(
        """
[models.e]
provider = "openai"
model = "text-embedding-3-small"
max_output_tokens = 100
dimensions = 0

[models.c]
provider = "openai"
model = "gpt-4o-mini"
dimensions = 256

[models.k]
provider = "openai"
model = "gpt-4o-mini"
kind = "embeding"
"""
    )
    assert "produces no output tokens" in problems["models.e.max_output_tokens"]
    assert "must be > 0" in problems["models.e.dimensions"]
    assert 'add kind = "embedding"' in problems["models.c.dimensions"]
    assert "did you mean 'embedding'" in problems["models.k.kind"]


def test_a_chat_model_still_needs_its_output_fields() -> None:
    problems = problems_of(
        """
[models.c]
provider = "openai"
model = "my-chat"
tokenizer = "o200k_base"
context_window = 8192
input_usd_per_mtok = 1
"""
    )
    assert problems["models.c.max_output_tokens"].startswith("missing; every model needs it")
    assert problems["models.c.output_usd_per_mtok"].startswith("missing; every model needs it")


def test_a_route_mixing_chat_and_embedding_models_is_refused() -> None:
    problems = problems_of(
        """
[models.e]
provider = "openai"
model = "text-embedding-3-small"
dimensions = 1536

[models.c]
provider = "openai"
model = "gpt-4o-mini"

[routes.mixed]
fallback = ["e", "c"]
"""
    )
    assert "mixes chat and embedding models (e: embedding, c: chat)" in problems["routes.mixed"]


@pytest.mark.parametrize(
    ("second", "shown"),
    [("dimensions = 3072", "g: 3072"), ("", "g: undeclared")],
)
def test_a_route_mixing_vector_lengths_is_refused(second: str, shown: str) -> None:
    problems = problems_of(
        f"""
[models.e]
provider = "openai"
model = "text-embedding-3-small"
dimensions = 1536

[models.g]
provider = "gemini"
model = "gemini-embedding-001"
{second}

[routes.vectors]
fallback = ["e", "g"]
"""
    )
    message = problems["routes.vectors"]
    assert "vectors differ in length" in message
    assert f"e: 1536, {shown}" in message


def test_a_route_of_one_vector_length_loads() -> None:
    registry = Registry.from_toml_text(
        PROVIDERS
        + """
[models.e]
provider = "openai"
model = "text-embedding-3-small"
dimensions = 1536

[models.a]
provider = "azure"
model = "text-embedding-3-small"
dimensions = 1536

[routes.vectors]
fallback = ["e", "a"]
"""
    )
    assert registry.routes["vectors"].fallback == ("e", "a")


def test_a_hand_built_deployment_keeps_the_rules() -> None:
    common = {"name": "x", "provider": "p", "model": "m", "tokenizer": "cl100k_base"}
    with pytest.raises(ArgumentError, match="max_output_tokens must be > 0"):
        Deployment(**common, context_window=10, input_usd_per_mtok=1.0)
    with pytest.raises(ArgumentError, match="produces no output tokens"):
        Deployment(
            **common,
            context_window=10,
            kind="embedding",
            max_output_tokens=5,
            input_usd_per_mtok=1.0,
        )
