"""Resolving names to plans, and the registry's lookups."""

from __future__ import annotations

from typing import Any

import pytest

from guardedllm.errors import ModelNotFoundError, NotFoundError
from guardedllm.registry import Deployment, ProviderConfig, Registry, Resolution, Route

from ._configs import VALID_TOML


@pytest.fixture
def registry() -> Registry:
    return Registry.from_toml_text(VALID_TOML, env="prod")


def test_model_name_resolves_to_itself(registry: Registry) -> None:
    resolution = registry.resolve("claude-haiku")
    assert resolution == Resolution(
        requested="claude-haiku",
        route="claude-haiku",
        deployments=(registry.models["claude-haiku"],),
        reason="model 'claude-haiku'",
    )


def test_alias_chain_is_followed(registry: Registry) -> None:
    resolution = registry.resolve("fast")
    assert resolution.requested == "fast"
    assert resolution.route == "gpt-4o-mini"
    assert [d.name for d in resolution.deployments] == ["gpt-4o-mini"]
    assert resolution.reason == "alias 'fast' -> alias 'chat' -> model 'gpt-4o-mini'"
    assert (resolution.deadline_s, resolution.max_cost_usd, resolution.max_attempts) == (
        None,
        None,
        None,
    )


def test_route_gives_its_plan_and_limits(registry: Registry) -> None:
    resolution = registry.resolve("support")
    assert resolution.route == "support"
    assert [d.name for d in resolution.deployments] == [
        "gpt-4o-mini",
        "claude-haiku",
        "gemini-flash",
    ]
    assert resolution.reason == "route 'support': fallback gpt-4o-mini, claude-haiku, gemini-flash"
    assert (resolution.deadline_s, resolution.max_cost_usd, resolution.max_attempts) == (
        10.0,  # prod's overlay
        0.05,
        2,
    )


def test_alias_of_a_route(registry: Registry) -> None:
    resolution = registry.resolve("helpdesk")
    assert resolution.requested == "helpdesk"
    assert resolution.route == "support"
    assert resolution.reason.startswith("alias 'helpdesk' -> route 'support': fallback ")
    assert resolution.deadline_s == 10.0


def test_names_lists_every_callable_name(registry: Registry) -> None:
    assert registry.names() == [
        "chat",
        "fast",
        "helpdesk",
        "summarize",
        "support",
        "batch",
        "gpt-4o-mini",
        "o3-mini",
        "claude-haiku",
        "gemini-flash",
        "azure-4o",
        "llama",
    ]
    for name in registry.names():
        assert registry.resolve(name).requested == name


def test_unknown_name(registry: Registry) -> None:
    with pytest.raises(ModelNotFoundError) as exc:
        registry.resolve("suport")
    message = str(exc.value)
    assert "no model, alias or route named 'suport' in environment 'prod'" in message
    assert "did you mean 'support'" in message
    assert "knows 12 names" in message
    assert "[env.prod.aliases]" in message
    assert isinstance(exc.value, NotFoundError)


def test_unknown_name_in_base_view() -> None:
    with pytest.raises(ModelNotFoundError) as exc:
        Registry.from_toml_text(VALID_TOML).resolve("gpt-5")
    assert "Add it to [aliases]" in str(exc.value)
    assert "environment" in str(exc.value)


def test_deployment_lookup(registry: Registry) -> None:
    assert registry.deployment("llama").model == "meta-llama/Llama-3.1-8B-Instruct"
    with pytest.raises(ModelNotFoundError) as exc:
        registry.deployment("chat")  # an alias is not a deployment
    assert "[models.NAME]" in str(exc.value)


def test_provider_of(registry: Registry) -> None:
    gemini = registry.deployment("gemini-flash")
    assert registry.provider_of(gemini).kind == "gemini"
    assert registry.provider_of("azure-4o").name == "azure"


def test_registry_is_read_only(registry: Registry) -> None:
    with pytest.raises(TypeError):
        registry.aliases["chat"] = "llama"  # type: ignore[index]
    with pytest.raises(AttributeError):
        registry.env = "staging"  # type: ignore[misc]


def _deployment(name: str, provider: str = "p", model: str | None = None) -> Deployment:
    return Deployment(
        name=name,
        provider=provider,
        model=model if model is not None else f"{name}-id",
        tokenizer="cl100k_base",
        context_window=8192,
        max_output_tokens=1024,
        input_usd_per_mtok=1.0,
        output_usd_per_mtok=2.0,
    )


def _provider() -> ProviderConfig:
    return ProviderConfig(name="p", kind="openai", base_url="https://api.openai.com/v1")


@pytest.mark.parametrize(
    ("kind", "model"),
    [("gemini", "../../v1/files"), ("azure-openai", "a/b"), ("azure-openai", "..")],
)
def test_hand_built_registry_refuses_an_id_that_leaves_its_url_path(kind: str, model: str) -> None:
    provider = ProviderConfig(
        name="p", kind=kind, base_url="https://vendor.example", api_version="v1"
    )
    with pytest.raises(ValueError, match="URL path"):
        Registry(providers={"p": provider}, models={"m": _deployment("m", model=model)})


def test_hand_built_registry_resolves() -> None:
    registry = Registry(
        providers={"p": _provider()},
        models={"m": _deployment("m"), "n": _deployment("n")},
        aliases={"a": "r"},
        routes={"r": Route(name="r", fallback=["n", "m"])},
    )
    assert [d.name for d in registry.resolve("a").deployments] == ["n", "m"]
    assert registry.environments == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aliases": {"a": "b", "b": "a"}},
        {"aliases": {"a": "missing"}},
        {"routes": {"r": Route(name="r", fallback=["missing"])}},
        {"models": {"m": _deployment("m", provider="other")}},
    ],
)
def test_hand_built_registry_refuses_dangling_names(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"providers": {"p": _provider()}, "models": {"m": _deployment("m")}}
    with pytest.raises(ValueError, match=r"unknown|does not resolve"):
        Registry(**{**arguments, **kwargs})
