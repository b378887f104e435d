"""Environment overlays, their validation, and comparing environments."""

from __future__ import annotations

from typing import Any

import pytest

from guardedllm.errors import ConfigError, ConfigProblem
from guardedllm.registry import Registry, compare_environments

from ._configs import load_problems, problems_of

# --------------------------------------------------------------------------- overlays


def test_overlay_changes_fields_of_existing_entries(data: dict[str, Any]) -> None:
    base = Registry.from_dict(data)
    staging = Registry.from_dict(data, env="staging")
    prod = Registry.from_dict(data, env="prod")
    assert base.models["azure-4o"].model == "gpt-4o-prod-deployment"
    assert staging.models["azure-4o"].model == "gpt-4o-staging-deployment"
    # Untouched fields of an overlaid entry keep their base values.
    assert staging.models["azure-4o"].context_window == 128000
    assert staging.providers["azure"].base_url == "https://contoso-staging.openai.azure.com"
    assert staging.providers["azure"].api_version == "2024-10-21"
    assert prod.routes["support"].deadline_s == 10.0
    assert prod.routes["support"].max_cost_usd == 0.05
    assert base.routes["support"].deadline_s == 20.0


def test_overlay_aliases_add_and_replace(data: dict[str, Any]) -> None:
    data["env"]["prod"]["aliases"]["chat"] = "o3-mini"
    base = Registry.from_dict(data)
    prod = Registry.from_dict(data, env="prod")
    assert "summarize" not in base.aliases
    assert prod.aliases["summarize"] == "claude-haiku"
    assert base.resolve("fast").deployments[0].name == "gpt-4o-mini"
    # "fast" is a base alias of "chat"; in prod it follows prod's "chat".
    assert prod.resolve("fast").deployments[0].name == "o3-mini"
    # The base route's fallback entry "chat" resolves per environment too.
    assert prod.routes["support"].fallback == ("o3-mini", "claude-haiku", "gemini-flash")


def test_overlay_defaults(data: dict[str, Any]) -> None:
    data["env"]["prod"]["defaults"] = {"deadline_s": 30}
    prod = Registry.from_dict(data, env="prod")
    assert (prod.defaults.deadline_s, prod.defaults.max_attempts) == (30.0, 3)


def test_environment_names(data: dict[str, Any]) -> None:
    registry = Registry.from_dict(data, env="prod")
    assert registry.environments == ("staging", "prod")
    assert registry.env == "prod"
    assert registry.with_env("staging").env == "staging"
    assert registry.with_env(None).env is None


def test_unknown_environment_lists_known_ones(data: dict[str, Any]) -> None:
    message = load_problems(data, env="production")["env"][0]
    assert "no environment named 'production'" in message
    assert "known: staging, prod" in message


def test_env_on_config_without_environments() -> None:
    assert "none are declared" in load_problems({}, env="prod")["env"][0]


@pytest.mark.parametrize(
    ("section", "name", "suggestion"),
    [
        ("providers", "azur", "azure"),
        ("models", "gpt-4o-mni", "gpt-4o-mini"),
        ("routes", "suport", "support"),
    ],
)
def test_overlay_of_undeclared_entry(
    data: dict[str, Any], section: str, name: str, suggestion: str
) -> None:
    data["env"]["staging"][section] = {name: {"timeout_s": 5}}
    message = load_problems(data)[f"env.staging.{section}.{name}"][0]
    assert f"overrides no [{section}.{name}] of the base config" in message
    assert f"did you mean '{suggestion}'" in message


def test_overlay_field_problem_is_keyed_under_the_overlay(data: dict[str, Any]) -> None:
    data["env"]["prod"]["models"] = {"llama": {"max_output_tokens": 10000, "tokenzier": "x"}}
    problems = load_problems(data)
    assert "smaller than max_output_tokens" in problems["models.llama.context_window"][0]
    assert "in env 'prod'" in problems["models.llama.context_window"][0]
    assert "did you mean 'tokenizer'" in problems["env.prod.models.llama.tokenzier"][0]


def test_overlay_value_of_wrong_type(data: dict[str, Any]) -> None:
    data["env"]["prod"]["providers"] = {"google": {"timeout_s": "15"}}
    assert "must be a number" in load_problems(data)["env.prod.providers.google.timeout_s"][0]


def test_overlay_breaking_a_base_reference_names_the_environment(data: dict[str, Any]) -> None:
    # In prod "chat" becomes a route, so the base route listing "chat" breaks only there.
    data["env"]["prod"]["aliases"]["chat"] = "batch"
    problems = load_problems(data)
    assert list(problems) == ["routes.support.fallback"]
    assert problems["routes.support.fallback"][0].startswith("in env 'prod': 'chat' is a route")


def test_overlay_alias_to_missing_model(data: dict[str, Any]) -> None:
    data["env"]["staging"]["aliases"]["summarize"] = "gpt-4o-mini-2025"
    assert "env.staging.aliases.summarize" in load_problems(data)


def test_overlay_alias_colliding_with_model(data: dict[str, Any]) -> None:
    data["env"]["staging"]["aliases"]["llama"] = "gpt-4o-mini"
    assert "same name as [models.llama]" in load_problems(data)["env.staging.aliases.llama"][0]


def test_environment_that_is_not_a_table(data: dict[str, Any]) -> None:
    data["env"]["dev"] = "staging"
    assert "env.dev" in load_problems(data)


# --------------------------------------------------------------------------- alias coverage


def test_alias_defined_in_one_environment_only(data: dict[str, Any]) -> None:
    del data["env"]["prod"]["aliases"]["summarize"]
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data, env="staging")
    assert problems_of(exc) == {
        "env.prod.aliases.summarize": [
            "alias 'summarize' is defined for staging but not for prod, nor in [aliases]: "
            "add it to [env.prod.aliases] (or to [aliases] for every environment)"
        ]
    }


def test_alias_in_one_environment_is_fine_with_a_top_level_default(data: dict[str, Any]) -> None:
    del data["env"]["prod"]["aliases"]["summarize"]
    data["aliases"]["summarize"] = "gemini-flash"
    prod = Registry.from_dict(data, env="prod")
    assert prod.resolve("summarize").deployments[0].name == "gemini-flash"


def test_alias_missing_from_an_environment_without_aliases(data: dict[str, Any]) -> None:
    data["env"]["dev"] = {"routes": {"batch": {"max_attempts": 1}}}
    assert "env.dev.aliases.summarize" in load_problems(data)


# --------------------------------------------------------------------------- comparing


def test_compare_reports_names_reaching_different_models(data: dict[str, Any]) -> None:
    registry = Registry.from_dict(data)
    problems = registry.compare_environments(["staging", "prod"])
    assert problems == [
        ConfigProblem(
            key="aliases.summarize",
            message="resolves to gpt-4o-mini-2024-07-18 (openai) in staging but "
            "claude-3-5-haiku-20241022 (anthropic) in prod; make the environments agree "
            "unless the difference is intended",
        ),
        ConfigProblem(
            key="models.azure-4o",
            message="resolves to gpt-4o-staging-deployment (azure) in staging but "
            "gpt-4o-prod-deployment (azure) in prod; make the environments agree "
            "unless the difference is intended",
        ),
    ]


def test_compare_the_staging_prod_alias_mismatch() -> None:
    config: dict[str, Any] = {
        "providers": {"openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"}},
        "models": {
            name: {
                "provider": "openai",
                "model": model,
                "tokenizer": "o200k_base",
                "context_window": 128000,
                "max_output_tokens": 16384,
                "input_usd_per_mtok": 0.15,
                "output_usd_per_mtok": 0.6,
            }
            for name, model in [
                ("mini", "gpt-4o-mini-2024-07-18"),
                ("mini-new", "gpt-4o-mini-2025"),
            ]
        },
        "routes": {"support": {"fallback": ["chat"]}},
        "env": {
            "staging": {"aliases": {"chat": "mini"}},
            "prod": {"aliases": {"chat": "mini-new"}},
        },
    }
    # The base has no "chat", so its route cannot load; give it one.
    config["aliases"] = {"chat": "mini"}
    problems = compare_environments(config, ["staging", "prod"])
    assert [str(p) for p in problems] == [
        "aliases.chat: resolves to gpt-4o-mini-2024-07-18 (openai) in staging but "
        "gpt-4o-mini-2025 (openai) in prod; make the environments agree unless the "
        "difference is intended",
        "routes.support: resolves to gpt-4o-mini-2024-07-18 (openai) in staging but "
        "gpt-4o-mini-2025 (openai) in prod; make the environments agree unless the "
        "difference is intended",
    ]


def test_compare_identical_environments(data: dict[str, Any]) -> None:
    data["env"]["prod"]["aliases"]["summarize"] = "gpt-4o-mini"
    del data["env"]["staging"]["models"]
    assert Registry.from_dict(data).compare_environments() == []


def test_compare_all_declared_environments_by_default(data: dict[str, Any]) -> None:
    registry = Registry.from_dict(data)
    assert registry.compare_environments() == registry.compare_environments(["staging", "prod"])


def test_compare_one_environment_is_empty(data: dict[str, Any]) -> None:
    assert Registry.from_dict(data).compare_environments(["prod"]) == []


def test_compare_more_than_two_environments(data: dict[str, Any]) -> None:
    data["env"]["dev"] = {"aliases": {"summarize": "gpt-4o-mini"}}
    problems = Registry.from_dict(data).compare_environments(["staging", "prod", "dev"])
    keys_and_sides = [(p.key, p.message.split(";")[0].rsplit(" in ", 1)[1]) for p in problems]
    # Each environment is compared with the first; dev matches staging except the Azure model.
    assert keys_and_sides == [
        ("aliases.summarize", "prod"),
        ("models.azure-4o", "prod"),
        ("models.azure-4o", "dev"),
    ]


def test_compare_unknown_environment(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data).compare_environments(["staging", "qa"])
    assert "known: staging, prod" in problems_of(exc)["env"][0]


def test_compare_accepts_data_or_registry(data: dict[str, Any]) -> None:
    assert compare_environments(data, ["staging", "prod"]) == compare_environments(
        Registry.from_dict(data), ["staging", "prod"]
    )


def test_registry_keeps_its_own_copy_of_the_data(data: dict[str, Any]) -> None:
    registry = Registry.from_dict(data)
    data["env"]["prod"]["aliases"]["summarize"] = "nope"
    assert registry.with_env("prod").aliases["summarize"] == "claude-haiku"
