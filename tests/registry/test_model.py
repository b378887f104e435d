"""The registry's value classes on their own."""

from __future__ import annotations

import pytest

from guardedllm import defaults
from guardedllm.registry import PROVIDER_KINDS, Defaults, Deployment, ProviderConfig, Route


def _provider(**overrides: object) -> ProviderConfig:
    fields: dict[str, object] = {
        "name": "openai",
        "kind": "openai",
        "base_url": "https://api.openai.com/v1",
        "api_key_env": "OPENAI_API_KEY",
    }
    return ProviderConfig(**{**fields, **overrides})  # type: ignore[arg-type]


def test_provider_kinds() -> None:
    assert frozenset({"openai", "openai-compatible", "azure-openai", "anthropic", "gemini"}) == (
        PROVIDER_KINDS
    )


def test_api_key_is_read_when_asked() -> None:
    provider = _provider()
    environ = {"OPENAI_API_KEY": "sk-first"}
    assert provider.api_key(environ) == "sk-first"
    environ["OPENAI_API_KEY"] = "sk-rotated"
    assert provider.api_key(environ) == "sk-rotated"


@pytest.mark.parametrize("environ", [{}, {"OPENAI_API_KEY": ""}])
def test_api_key_unset_or_empty(environ: dict[str, str]) -> None:
    assert _provider().api_key(environ) is None


def test_api_key_without_variable() -> None:
    assert _provider(api_key_env=None).api_key({"OPENAI_API_KEY": "sk-x"}) is None


def test_api_key_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDEDLLM_TEST_KEY", "sk-from-environment")
    assert _provider(api_key_env="GUARDEDLLM_TEST_KEY").api_key() == "sk-from-environment"


def test_provider_repr_names_the_variable_and_hides_header_values() -> None:
    provider = _provider(headers={"X-Gateway-Token": "tok-very-secret"})
    text = repr(provider)
    assert "api_key_env='OPENAI_API_KEY'" in text
    assert "X-Gateway-Token" in text
    assert "tok-very-secret" not in text


def test_provider_is_hashable_and_its_headers_read_only() -> None:
    provider = _provider(headers={"X-A": "1"})
    assert hash(provider) == hash(_provider(headers={"X-A": "2"}))
    with pytest.raises(TypeError):
        provider.headers["X-A"] = "2"  # type: ignore[index]


def test_unknown_kind_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        _provider(kind="bedrock")


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "https://api.openai.com/v1?key=sk-abcdef"},
        {"base_url": "https://api.openai.com/v1\r\n"},
        {"base_url": "https://user@api.openai.com/v1"},
        {"headers": {"X-Team:": "search"}},
        {"headers": {"X-Team": "équipe"}},
        {"headers": {"X-Team": "a\r\nb"}},
        {"kind": "gemini", "api_version": "../v1"},
    ],
)
def test_provider_refuses_what_it_could_not_send(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"base_url|header|api_version") as caught:
        _provider(**overrides)
    assert "sk-abcdef" not in str(caught.value)
    assert "équipe" not in str(caught.value)


def _deployment(**overrides: object) -> Deployment:
    fields: dict[str, object] = {
        "name": "m",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "tokenizer": "o200k_base",
        "context_window": 128000,
        "max_output_tokens": 16384,
        "input_usd_per_mtok": 0.15,
        "output_usd_per_mtok": 0.6,
    }
    return Deployment(**{**fields, **overrides})  # type: ignore[arg-type]


def test_deployment_defaults() -> None:
    deployment = _deployment()
    assert deployment.capabilities == frozenset()
    assert deployment.cached_input_usd_per_mtok is None
    assert deployment.reasoning_usd_per_mtok is None
    assert (deployment.rpm, deployment.tpm) == (None, None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_output_tokens": 200000},
        {"context_window": 0},
        {"input_usd_per_mtok": -1.0},
        {"cached_input_usd_per_mtok": -0.1},
        {"capabilities": ["tools", "telepathy"]},
        {"rpm": 0},
        {"output_usd_per_mtok": 1e12},  # a worst case no spend budget can count
        {"reasoning_usd_per_mtok": 1e12},
    ],
)
def test_deployment_refuses_invalid_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _deployment(**overrides)


def test_route_needs_a_fallback() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Route(name="r", fallback=[])
    assert Route(name="r", fallback=["a", "b"]).fallback == ("a", "b")


def test_defaults_come_from_the_defaults_module() -> None:
    assert Defaults() == Defaults(
        deadline_s=defaults.DEADLINE_S,
        max_attempts=defaults.MAX_ATTEMPTS,
        timeout_s=defaults.TIMEOUT_S,
        max_retry_after_s=defaults.MAX_RETRY_AFTER_S,
    )
    with pytest.raises(ValueError, match="max_attempts"):
        Defaults(max_attempts=0)
    with pytest.raises(ValueError, match="max_retry_after_s"):
        Defaults(max_retry_after_s=0)
