"""Loading and validating a config: every rule reports its problem under its key, all at once."""

from __future__ import annotations

import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from guardedllm.errors import ConfigError
from guardedllm.registry import Defaults, Registry

from ._configs import VALID_TOML, load_problems, problems_of

DESIGN_EXAMPLE = """
[providers.openai]
kind = "openai"                    # openai | openai-compatible | azure-openai | anthropic | gemini
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"     # the name of the variable, never the key itself

[providers.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"

[models.gpt-4o-mini]               # a deployment: one vendor model behind one provider
provider = "openai"
model = "gpt-4o-mini-2024-07-18"   # the vendor's model id
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
cached_input_usd_per_mtok = 0.075  # optional
capabilities = ["tools", "vision", "json"]
rpm = 500                          # optional limits
tpm = 200000

[models.claude-haiku]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
tokenizer = "o200k_base"           # estimate only for non-OpenAI models (exact = false)
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4.00

[aliases]                          # names application code uses (a model's own name works too)
chat = "gpt-4o-mini"

[routes.support]                   # a policy; application code uses the route name like an alias
fallback = ["gpt-4o-mini", "claude-haiku"]
deadline_s = 20
max_cost_usd = 0.05

[env.staging.aliases]              # per-environment overlays
chat = "gpt-4o-mini"
[env.prod.aliases]
chat = "gpt-4o-mini"
"""


# --------------------------------------------------------------------------- valid configs


def test_design_example_loads() -> None:
    registry = Registry.from_toml_text(DESIGN_EXAMPLE, env="prod")
    assert registry.env == "prod"
    assert registry.environments == ("staging", "prod")
    assert registry.models["gpt-4o-mini"].cached_input_usd_per_mtok == 0.075
    assert registry.models["gpt-4o-mini"].capabilities == {"tools", "vision", "json"}
    assert registry.routes["support"].fallback == ("gpt-4o-mini", "claude-haiku")
    assert registry.defaults == Defaults()


def test_valid_config_values() -> None:
    registry = Registry.from_toml_text(VALID_TOML)
    assert registry.defaults == Defaults(deadline_s=45.0, max_attempts=3, timeout_s=20.0)
    openai = registry.providers["openai"]
    assert openai.base_url == "https://api.openai.com/v1"  # the kind's default
    assert registry.providers["google"].base_url == "https://generativelanguage.googleapis.com"
    assert registry.providers["google"].timeout_s == 15.0
    assert registry.providers["azure"].api_version == "2024-10-21"
    assert registry.providers["local"].headers == {"X-Team": "search"}
    assert registry.providers["local"].api_key_env is None
    llama = registry.models["llama"]
    assert (llama.input_usd_per_mtok, llama.output_usd_per_mtok) == (0.0, 0.0)
    assert registry.models["o3-mini"].reasoning_usd_per_mtok == 4.40
    # Fallback aliases are resolved to deployment names at load time.
    assert registry.routes["support"].fallback == ("gpt-4o-mini", "claude-haiku", "gemini-flash")
    assert registry.routes["batch"].max_attempts is None


def test_the_retry_after_cap_is_read_from_defaults(data: dict[str, Any]) -> None:
    data["defaults"]["max_retry_after_s"] = 15
    data.setdefault("env", {})["prod"]["defaults"] = {"max_retry_after_s": 2.5}
    assert Registry.from_dict(data).defaults.max_retry_after_s == 15.0
    assert Registry.from_dict(data, env="prod").defaults.max_retry_after_s == 2.5


def test_empty_config_is_an_empty_registry() -> None:
    registry = Registry.from_dict({})
    assert registry.names() == []
    assert registry.defaults == Defaults()


def test_from_toml_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "guardedllm.toml"
    path.write_text(VALID_TOML, encoding="utf-8")
    assert Registry.from_toml(path, env="staging").env == "staging"


# --------------------------------------------------------------------------- files and syntax


def test_toml_syntax_error_gives_line_and_column() -> None:
    text = '[models.a]\nprovider = "openai"\ncontext_window = \n'
    with pytest.raises(ConfigError) as exc:
        Registry.from_toml_text(text, source="app.toml")
    (problem,) = exc.value.problems
    assert problem.key == "(syntax)"
    assert "line 3" in problem.message
    assert "column" in problem.message
    assert exc.value.source == "app.toml"


DEEP = 100_000


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * DEEP + "]" * DEEP,
        "x = " + "{ a = " * DEEP + "1" + " }" * DEEP,
        "[aliases]\nchat = " + "[" * DEEP,  # never closed
    ],
    ids=["arrays", "inline-tables", "unclosed"],
)
def test_nesting_too_deep_for_the_parser_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Registry.from_toml_text(text, source="deep.toml")
    (problem,) = exc.value.problems
    assert problem.key == "(syntax)"
    assert "levels deep" in problem.message
    assert "brackets or braces left open" in problem.message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("x = " + "[" * 40 + "]" * 40, "x" + "[0]" * 31),
        ("a." * 500 + "b = 1", ".".join(["a"] * 32)),
        ("[" + "a." * 500 + "b]\nc = 1", ".".join(["a"] * 32)),
        ("[routes.r]\nfallback = " + "[" * 40 + "]" * 40, "routes.r.fallback" + "[0]" * 29),
    ],
    ids=["arrays", "dotted-key", "table-header", "in-a-table"],
)
def test_nesting_deeper_than_any_setting_is_refused_where_it_is(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Registry.from_toml_text(text)
    assert problems_of(exc) == {
        key: [
            "nests tables or arrays more than 32 levels deep, deeper than any setting goes: "
            "look for brackets or braces left open, or remove it"
        ]
    }


def test_data_nested_without_end_is_a_config_error() -> None:
    data: dict[str, Any] = {"aliases": {}}
    data["aliases"]["chat"] = data  # a cycle: no TOML file holds one, a caller's dict may
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data)
    (key,) = problems_of(exc)
    assert key.startswith("aliases.chat.aliases.chat.")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        Registry.from_toml(tmp_path / "nope.toml")
    assert list(problems_of(exc)) == ["(file)"]
    assert "check the path" in str(exc.value)


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[aliases]\nchat = "caf\xe9"\n')
    with pytest.raises(ConfigError) as exc:
        Registry.from_toml(path)
    assert "UTF-8" in problems_of(exc)["(file)"][0]


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("path", "typo", "suggestion"),
    [
        ((), "model", "models"),
        (("providers", "openai"), "api_key_var", "api_key_env"),
        (("models", "gpt-4o-mini"), "context_windw", "context_window"),
        (("models", "gpt-4o-mini"), "input_usd_per_mtoken", "input_usd_per_mtok"),
        (("routes", "support"), "fallbacks", "fallback"),
        (("defaults",), "deadline", "deadline_s"),
        (("env", "prod"), "alias", "aliases"),
        (("env", "prod", "routes", "support"), "max_cost", "max_cost_usd"),
    ],
)
def test_unknown_key_suggests_the_closest(
    data: dict[str, Any], path: tuple[str, ...], typo: str, suggestion: str
) -> None:
    table = data
    for part in path:
        table = table.setdefault(part, {})
    table[typo] = 1
    problems = load_problems(data)
    key = ".".join((*path, typo))
    assert key in problems, problems
    assert f"did you mean '{suggestion}'" in problems[key][0]


# --------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("section", "name", "field", "value", "expected"),
    [
        ("models", "gpt-4o-mini", "input_usd_per_mtok", "0.15", "must be a number, got a string"),
        ("models", "gpt-4o-mini", "context_window", 128000.5, "whole number, got a float"),
        ("models", "gpt-4o-mini", "rpm", True, "whole number, got a boolean"),
        ("models", "gpt-4o-mini", "capabilities", "tools", "array of strings"),
        ("models", "gpt-4o-mini", "capabilities", ["tools", 3], "array of strings"),
        ("models", "gpt-4o-mini", "model", 4, "must be a string, got an integer"),
        ("models", "gpt-4o-mini", "model", "  ", "must not be empty"),
        ("models", "gpt-4o-mini", "output_usd_per_mtok", math.nan, "finite"),
        ("providers", "openai", "headers", ["X-A"], "table of strings"),
        ("providers", "openai", "timeout_s", "30s", "must be a number"),
        ("routes", "support", "fallback", "chat", "array of strings"),
        ("routes", "support", "deadline_s", math.inf, "finite"),
        ("routes", "support", "max_attempts", 2.0, "whole number"),
        # Too large for the floats the guards count in: refused, not an OverflowError.
        ("models", "gpt-4o-mini", "input_usd_per_mtok", 10**400, "too large for a number"),
        ("models", "gpt-4o-mini", "tpm", 10**400, "too large: write a whole number up to"),
        ("models", "gpt-4o-mini", "context_window", 2**53 + 1, "too large"),
        # Longer than a socket or an event loop can wait: refused, not an OverflowError.
        ("providers", "openai", "timeout_s", 1e300, "at most 86400 seconds"),
        ("routes", "support", "deadline_s", 86_401, "at most 86400 seconds"),
    ],
)
def test_wrong_type(
    data: dict[str, Any], section: str, name: str, field: str, value: Any, expected: str
) -> None:
    data[section][name][field] = value
    problems = load_problems(data)
    assert expected in problems[f"{section}.{name}.{field}"][0]


def test_wrong_type_in_defaults(data: dict[str, Any]) -> None:
    data["defaults"]["max_attempts"] = "3"
    assert "whole number" in load_problems(data)["defaults.max_attempts"][0]


@pytest.mark.parametrize("field", ["deadline_s", "timeout_s", "max_retry_after_s"])
def test_a_duration_in_defaults_is_at_most_a_day(data: dict[str, Any], field: str) -> None:
    data["defaults"][field] = 1e300
    assert "at most 86400 seconds" in load_problems(data)[f"defaults.{field}"][0]


@pytest.mark.parametrize("section", ["providers", "models", "routes", "aliases", "defaults", "env"])
def test_section_that_is_not_a_table(data: dict[str, Any], section: str) -> None:
    data[section] = "oops"
    assert "must be a table" in load_problems(data)[section][0]


def test_entry_that_is_not_a_table(data: dict[str, Any]) -> None:
    data["models"]["gpt-5"] = "gpt-5-2025-08-07"
    assert "[models.gpt-5]" in load_problems(data)["models.gpt-5"][0]


# --------------------------------------------------------------------------- required keys


def test_provider_without_kind(data: dict[str, Any]) -> None:
    del data["providers"]["openai"]["kind"]
    assert "missing" in load_problems(data)["providers.openai.kind"][0]


@pytest.mark.parametrize(
    "field",
    [
        "provider",
        "model",
        "tokenizer",
        "context_window",
        "max_output_tokens",
        "input_usd_per_mtok",
        "output_usd_per_mtok",
    ],
)
def test_model_missing_required_field(data: dict[str, Any], field: str) -> None:
    del data["models"]["claude-haiku"][field]
    problems = load_problems(data)
    # claude-3-5-haiku-20241022 is not in the model catalog: a field the catalog would have
    # supplied is also explained at the model id, once.
    inheritable = field not in ("provider", "model")
    explained = ["models.claude-haiku.model"] if inheritable else []
    assert list(problems) == [*explained, f"models.claude-haiku.{field}"]
    assert problems[f"models.claude-haiku.{field}"][0].startswith("missing; every model needs it")
    if inheritable:
        [message] = problems["models.claude-haiku.model"]
        assert message.startswith(
            "'claude-3-5-haiku-20241022' is not in the model catalog for anthropic providers"
        )
        assert message.endswith(
            f"so {field} cannot be inherited: fix the id (`guardedllm models` lists the "
            "catalog) or write those fields out"
        )


def test_route_without_fallback(data: dict[str, Any]) -> None:
    del data["routes"]["batch"]["fallback"]
    assert "missing" in load_problems(data)["routes.batch.fallback"][0]


# --------------------------------------------------------------------------- providers


def test_unknown_provider_kind(data: dict[str, Any]) -> None:
    data["providers"]["anthropic"]["kind"] = "antropic"
    message = load_problems(data)["providers.anthropic.kind"][0]
    assert "did you mean 'anthropic'" in message
    assert "openai-compatible" in message  # lists the kinds


@pytest.mark.parametrize("name", ["local", "azure"])
def test_base_url_required_without_a_default(data: dict[str, Any], name: str) -> None:
    del data["providers"][name]["base_url"]
    assert "no default URL" in load_problems(data)[f"providers.{name}.base_url"][0]


def test_azure_needs_api_version(data: dict[str, Any]) -> None:
    del data["providers"]["azure"]["api_version"]
    assert "api_version" in load_problems(data)["providers.azure.api_version"][0]


def test_api_version_only_for_azure(data: dict[str, Any]) -> None:
    data["providers"]["openai"]["api_version"] = "2024-10-21"
    assert "only azure-openai" in load_problems(data)["providers.openai.api_version"][0]


@pytest.mark.parametrize(
    "url", ["api.anthropic.example/v1", "ftp://files.example.com", "https:///v1"]
)
def test_base_url_must_be_http(data: dict[str, Any], url: str) -> None:
    data["providers"]["anthropic"]["base_url"] = url
    message = load_problems(data)["providers.anthropic.base_url"][0]
    assert message.startswith("must be an http:// or https:// URL with a host")
    assert url not in message


@pytest.mark.parametrize("name", ["OPENAI KEY", "1OPENAI", "openai-key", "$OPENAI_API_KEY"])
def test_api_key_env_must_be_a_variable_name(data: dict[str, Any], name: str) -> None:
    data["providers"]["openai"]["api_key_env"] = name
    message = load_problems(data)["providers.openai.api_key_env"][0]
    assert "name of an environment variable" in message
    assert name not in message


@pytest.mark.parametrize(
    "key",
    [
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
        "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a",
        "sk-abc1",
    ],
)
def test_api_key_env_holding_a_key(data: dict[str, Any], key: str) -> None:
    data["providers"]["openai"]["api_key_env"] = key
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data)
    message = problems_of(exc)["providers.openai.api_key_env"][0]
    assert "put the key in an environment variable and name the variable" in message
    assert key not in str(exc.value)
    assert key not in repr(exc.value.problems)


def test_headers_with_credentials(data: dict[str, Any]) -> None:
    data["providers"]["local"]["headers"] = {"Authorization": "Bearer abc", "X-Team": "search"}
    problems = load_problems(data)
    assert "carries a secret" in problems["providers.local.headers.Authorization"][0]
    assert "providers.local.headers.X-Team" not in problems


def test_base_url_with_credentials(data: dict[str, Any]) -> None:
    data["providers"]["local"]["base_url"] = "http://admin:hunter2@127.0.0.1:8000/v1"
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data)
    assert "holds credentials" in problems_of(exc)["providers.local.base_url"][0]
    assert "hunter2" not in str(exc.value)


# What passed loading and then broke the first call, or sent it elsewhere on the vendor's host.


@pytest.mark.parametrize(
    "value",
    ["équipe", "search\r\nX-Injected: 1", "search\n", "tab\x00null", "\x7f"],
    ids=["non-ascii", "crlf", "newline", "nul", "del"],
)
def test_a_header_value_http_cannot_send_is_refused(data: dict[str, Any], value: str) -> None:
    data["providers"]["local"]["headers"] = {"X-Team": value}
    message = load_problems(data)["providers.local.headers.X-Team"][0]
    assert message.startswith("must be printable ASCII text, without line breaks")
    assert value not in message


@pytest.mark.parametrize("name", ["X-Team:", "X Team", "X-Téam", "", "X-Team\n"])
def test_a_header_name_that_is_no_http_token_is_refused(data: dict[str, Any], name: str) -> None:
    data["providers"]["local"]["headers"] = {name: "search", "X-Ok": "fine 'quoted' \t text"}
    problems = load_problems(data)
    (key,) = [k for k in problems if k.startswith("providers.local.headers.")]
    assert problems[key] == [
        "is not an HTTP header name: use only letters, digits and - (no colon, space or other "
        "punctuation), like X-Team"
    ]


@pytest.mark.parametrize(
    ("url", "wrong"),
    [
        ("https://api.example.com/v1\r\n", "must not hold spaces, line breaks"),
        ("https://api.example.com/v1\n", "must not hold spaces, line breaks"),
        ("https://api.example.com/ v1", "must not hold spaces, line breaks"),
        ("https://api.example.com/v1?key=abcdef", "must not have a query (?...) or fragment"),
        ("https://api.example.com/v1?", "must not have a query (?...) or fragment"),
        ("https://api.example.com/v1#k=abcdef", "must not have a query (?...) or fragment"),
        ("https://token123@api.example.com/v1", "holds credentials"),
        ("https://api.example.com:99999/v1", "is not a valid URL"),
        ("https://api.example.com:port/v1", "is not a valid URL"),
        ("http://[::1/v1", "is not a valid URL"),
    ],
)
def test_a_base_url_that_cannot_be_sent_to_or_would_print_a_secret_is_refused(
    data: dict[str, Any], url: str, wrong: str
) -> None:
    data["providers"]["local"]["base_url"] = url
    message = load_problems(data)["providers.local.base_url"][0]
    assert message.startswith(wrong)
    assert "abcdef" not in message
    assert "token123" not in message


@pytest.mark.parametrize(
    "url",
    ["https://api.example.com", "http://127.0.0.1:8000/v1/", "https://bücher.example/v1%20x"],
)
def test_a_base_url_with_a_host_port_and_path_is_fine(data: dict[str, Any], url: str) -> None:
    data["providers"]["local"]["base_url"] = url
    assert Registry.from_dict(data).providers["local"].base_url == url


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("google", "../../v1/files"),
        ("google", "gemini-2.0-flash/../../files"),
        ("google", "gemini-2.0-flash?alt=media"),
        ("google", "gemini-2.0-flash#x"),
        ("google", "gemini 2.0"),
        ("google", "gemini%2F..%2Ffiles"),
        ("google", "tunedModels//x"),
        ("google", "/tunedModels/x"),
        ("google", "gemini\n"),
        ("azure", ".."),
        ("azure", "prod/deployment"),
        ("azure", "prod deployment"),
        ("azure", "prod\tdeployment"),
    ],
)
def test_a_vendor_id_that_leaves_its_url_path_is_refused(
    data: dict[str, Any], provider: str, model: str
) -> None:
    name = {"google": "gemini-flash", "azure": "azure-4o"}[provider]
    data["models"][name]["model"] = model
    message = load_problems(data)[f"models.{name}.model"][0]
    assert message.startswith("goes into the URL path of every request")
    assert "and no part may be . or .." in message


def test_ids_that_stay_in_their_path_are_fine(data: dict[str, Any]) -> None:
    data["models"]["gemini-flash"]["model"] = "tunedModels/support-bot-v2.1"
    data["models"]["azure-4o"]["model"] = "gpt-4o_prod.2024-08"
    data["models"]["llama"]["model"] = "meta-llama/Llama 3.1?8B#x"  # in the body, not the URL
    registry = Registry.from_dict(data)
    assert registry.models["gemini-flash"].model == "tunedModels/support-bot-v2.1"


@pytest.mark.parametrize(
    ("provider", "version"),
    [
        ("google", "../v1"),
        ("google", "v1beta/models"),
        ("google", ".."),
        ("azure", "2024-10-21&x=1"),
        ("anthropic", "2023-06-01\r\nX-Injected: 1"),
    ],
)
def test_an_api_version_that_leaves_its_place_is_refused(
    data: dict[str, Any], provider: str, version: str
) -> None:
    data["providers"][provider]["api_version"] = version
    message = load_problems(data)[f"providers.{provider}.api_version"][0]
    assert message.startswith("goes into the URL path of every request")
    assert message.endswith("write the version exactly as it spells it")


@pytest.mark.parametrize(
    ("price", "value"),
    [
        ("output_usd_per_mtok", 1e12),
        ("input_usd_per_mtok", 1e11),
        ("cached_input_usd_per_mtok", 1e11),
        ("reasoning_usd_per_mtok", 1e12),
    ],
)
def test_a_price_past_what_a_spend_budget_can_count_is_refused(
    data: dict[str, Any], price: str, value: float
) -> None:
    data["models"]["gpt-4o-mini"][price] = value
    message = load_problems(data)[f"models.gpt-4o-mini.{price}"][0]
    assert message.startswith("makes one call's worst case $")
    assert "more than the $9,000,000 a spend budget can count" in message


def test_a_price_past_the_bound_is_reported_with_the_entrys_other_problems(
    data: dict[str, Any],
) -> None:
    data["models"]["gpt-4o-mini"].update(output_usd_per_mtok=1e12, tokenizer="o300k")
    problems = load_problems(data)
    assert "models.gpt-4o-mini.output_usd_per_mtok" in problems
    assert "models.gpt-4o-mini.tokenizer" in problems


def test_the_dearest_price_a_spend_budget_can_count_is_fine(data: dict[str, Any]) -> None:
    # 128000 input tokens and 16384 output tokens at these rates: $9,000,000 exactly.
    gpt = data["models"]["gpt-4o-mini"]
    gpt.update(input_usd_per_mtok=0.0, cached_input_usd_per_mtok=0.0)
    gpt["output_usd_per_mtok"] = 9e6 * 1e6 / 16384
    assert Registry.from_dict(data).models["gpt-4o-mini"].output_usd_per_mtok > 5e8
    gpt["output_usd_per_mtok"] *= 1.001
    assert "models.gpt-4o-mini.output_usd_per_mtok" in load_problems(data)


def test_a_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "guardedllm.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID_TOML.encode())
    assert Registry.from_toml(path).models["gpt-4o-mini"].provider == "openai"
    assert Registry.from_toml_text("\ufeff" + VALID_TOML).models == Registry.from_toml(path).models


def test_provider_timeout_must_be_positive(data: dict[str, Any]) -> None:
    data["providers"]["google"]["timeout_s"] = 0
    assert "must be > 0" in load_problems(data)["providers.google.timeout_s"][0]


# --------------------------------------------------------------------------- models


def test_model_naming_unknown_provider(data: dict[str, Any]) -> None:
    data["models"]["claude-haiku"]["provider"] = "anthropik"
    message = load_problems(data)["models.claude-haiku.provider"][0]
    assert "did you mean 'anthropic'" in message
    assert "[providers.anthropik]" in message


def test_model_of_a_broken_provider_is_not_reported_twice(data: dict[str, Any]) -> None:
    data["providers"]["anthropic"]["kind"] = "nope"
    assert list(load_problems(data)) == ["providers.anthropic.kind"]


def test_unknown_tokenizer(data: dict[str, Any]) -> None:
    data["models"]["gpt-4o-mini"]["tokenizer"] = "o200k"
    message = load_problems(data)["models.gpt-4o-mini.tokenizer"][0]
    assert "did you mean 'o200k_base'" in message
    assert "cl100k_base" in message


def test_approx_is_not_a_tokenizer(data: dict[str, Any]) -> None:
    data["models"]["claude-haiku"]["tokenizer"] = "approx"
    assert "models.claude-haiku.tokenizer" in load_problems(data)


@pytest.mark.parametrize("window", [0, -5])
def test_context_window_must_be_positive(data: dict[str, Any], window: int) -> None:
    data["models"]["llama"]["context_window"] = window
    assert "must be > 0" in load_problems(data)["models.llama.context_window"][0]


def test_context_window_smaller_than_max_output(data: dict[str, Any]) -> None:
    data["models"]["llama"]["max_output_tokens"] = 9000
    message = load_problems(data)["models.llama.context_window"][0]
    assert "smaller than max_output_tokens (9000)" in message


@pytest.mark.parametrize(
    "price",
    [
        "input_usd_per_mtok",
        "output_usd_per_mtok",
        "cached_input_usd_per_mtok",
        "reasoning_usd_per_mtok",
    ],
)
def test_negative_price(data: dict[str, Any], price: str) -> None:
    data["models"]["o3-mini"][price] = -1.1
    assert "must be >= 0, got -1.1" in load_problems(data)[f"models.o3-mini.{price}"][0]


def test_unknown_capability(data: dict[str, Any]) -> None:
    data["models"]["gpt-4o-mini"]["capabilities"] = ["tools", "vison"]
    message = load_problems(data)["models.gpt-4o-mini.capabilities"][0]
    assert "did you mean 'vision'" in message


@pytest.mark.parametrize("limit", ["rpm", "tpm"])
def test_rate_limits_must_be_positive(data: dict[str, Any], limit: str) -> None:
    data["models"]["gpt-4o-mini"][limit] = 0
    assert f"models.gpt-4o-mini.{limit}" in load_problems(data)


def test_name_needing_quotes_is_quoted_in_keys(data: dict[str, Any]) -> None:
    data["models"]["gpt-4.1"] = dict(data["models"]["gpt-4o-mini"], tokenizer="o200")
    assert 'models."gpt-4.1".tokenizer' in load_problems(data)


# --------------------------------------------------------------------------- aliases


def test_alias_to_missing_name(data: dict[str, Any]) -> None:
    data["aliases"]["chat"] = "gpt-4o-mni"
    problems = load_problems(data)
    assert "did you mean 'gpt-4o-mini'" in problems["aliases.chat"][0]
    # Only the broken alias is reported, not "fast" (which points at it) or the route using it.
    assert list(problems) == ["aliases.chat"]


def test_alias_that_is_not_a_string(data: dict[str, Any]) -> None:
    data["aliases"]["chat"] = ["gpt-4o-mini"]
    assert "must be the name of a model" in load_problems(data)["aliases.chat"][0]


def test_alias_cycle_shows_the_cycle(data: dict[str, Any]) -> None:
    data["aliases"].update({"a": "b", "b": "c", "c": "a", "d": "b"})
    problems = load_problems(data)
    assert problems == {
        "aliases.a": ["alias cycle a -> b -> c -> a: point one of them at a model or a route"]
    }


def test_alias_pointing_at_itself(data: dict[str, Any]) -> None:
    data["aliases"]["loop"] = "loop"
    assert "alias cycle loop -> loop" in load_problems(data)["aliases.loop"][0]


@pytest.mark.parametrize(("name", "table"), [("llama", "models"), ("batch", "routes")])
def test_alias_name_collides(data: dict[str, Any], name: str, table: str) -> None:
    data["aliases"][name] = "gpt-4o-mini"
    assert f"same name as [{table}.{name}]" in load_problems(data)[f"aliases.{name}"][0]


def test_route_name_collides_with_model(data: dict[str, Any]) -> None:
    data["routes"]["llama"] = {"fallback": ["gpt-4o-mini"]}
    assert "same name as [models.llama]" in load_problems(data)["routes.llama"][0]


# --------------------------------------------------------------------------- routes


def test_route_fallback_empty(data: dict[str, Any]) -> None:
    data["routes"]["batch"]["fallback"] = []
    assert "is empty" in load_problems(data)["routes.batch.fallback"][0]


def test_route_fallback_naming_missing_model(data: dict[str, Any]) -> None:
    data["routes"]["batch"]["fallback"] = ["lama", "gpt-4o-mini"]
    message = load_problems(data)["routes.batch.fallback"][0]
    assert "'lama' is not a model or alias (did you mean 'llama'?)" in message


def test_route_fallback_duplicates(data: dict[str, Any]) -> None:
    data["routes"]["support"]["fallback"] = ["chat", "gpt-4o-mini", "llama", "llama"]
    messages = load_problems(data)["routes.support.fallback"]
    assert any("'gpt-4o-mini' twice (as 'chat' and 'gpt-4o-mini')" in m for m in messages)
    assert any("'llama' twice:" in m for m in messages)


def test_route_fallback_naming_a_route(data: dict[str, Any]) -> None:
    data["routes"]["batch"]["fallback"] = ["helpdesk"]
    assert "'helpdesk' is a route" in load_problems(data)["routes.batch.fallback"][0]


@pytest.mark.parametrize(
    ("field", "value"), [("deadline_s", -1), ("deadline_s", 0), ("max_cost_usd", -0.01)]
)
def test_route_limits_must_be_positive(data: dict[str, Any], field: str, value: float) -> None:
    data["routes"]["support"][field] = value
    assert "must be > 0" in load_problems(data)[f"routes.support.{field}"][0]


def test_route_max_attempts_at_least_one(data: dict[str, Any]) -> None:
    data["routes"]["support"]["max_attempts"] = 0
    assert "at least 1" in load_problems(data)["routes.support.max_attempts"][0]


def test_route_fallback_checked_even_when_other_fields_are_wrong(data: dict[str, Any]) -> None:
    data["routes"]["support"].update(deadline_s=-3, fallback=["nope"])
    assert {"routes.support.deadline_s", "routes.support.fallback"} <= set(load_problems(data))


@pytest.mark.parametrize("field", ["deadline_s", "max_attempts", "timeout_s", "max_retry_after_s"])
def test_defaults_must_be_positive(data: dict[str, Any], field: str) -> None:
    data["defaults"][field] = -1
    assert "must be > 0" in load_problems(data)[f"defaults.{field}"][0]


# --------------------------------------------------------------------------- all at once


def test_every_problem_reported_at_once(data: dict[str, Any]) -> None:
    data["providers"]["openai"]["kind"] = "opnai"
    data["providers"]["local"]["api_key_env"] = "sk-abcdefghijklmnopqrstuvwxyz"
    data["models"]["gpt-4o-mini"]["input_usd_per_mtok"] = -0.15
    data["models"]["claude-haiku"]["tokenizer"] = "claude"
    del data["models"]["llama"]["output_usd_per_mtok"]
    data["aliases"]["chat"] = "gpt4o"
    data["routes"]["batch"]["fallback"] = []
    data["defaults"]["timeout_s"] = "30"
    data["env"]["prod"]["models"] = {"gpt-5": {"model": "gpt-5"}}
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data, source="guardedllm.toml")
    assert set(problems_of(exc)) == {
        "providers.openai.kind",
        "providers.local.api_key_env",
        "models.gpt-4o-mini.input_usd_per_mtok",
        "models.claude-haiku.tokenizer",
        "models.llama.output_usd_per_mtok",
        "aliases.chat",
        "routes.batch.fallback",
        "defaults.timeout_s",
        "env.prod.models.gpt-5",
    }
    text = str(exc.value)
    assert text.startswith("9 config problems in guardedllm.toml:")
    assert "guardedllm check" in text


def test_base_problem_is_reported_once_not_per_environment(data: dict[str, Any]) -> None:
    data["models"]["gpt-4o-mini"]["tokenizer"] = "o200k"
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data)
    assert len(exc.value.problems) == 1


def test_from_dict_accepts_any_mapping_and_sequence(data: dict[str, Any]) -> None:
    data["routes"]["batch"]["fallback"] = ("llama", "gpt-4o-mini")
    data["providers"] = MappingProxyType(data["providers"])
    registry = Registry.from_dict(MappingProxyType(data), env="prod")
    assert registry.routes["batch"].fallback == ("llama", "gpt-4o-mini")
    assert registry.with_env("staging").env == "staging"


def test_from_dict_needs_a_mapping() -> None:
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(["models"])  # type: ignore[arg-type]
    assert list(problems_of(exc)) == ["(top level)"]
