"""Realistic configs for the registry tests: every test starts from a valid one and breaks it."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

from guardedllm.errors import ConfigError
from guardedllm.registry import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

# A config in the shape a team would run: three vendors, a self-hosted OpenAI-compatible
# server, Azure, aliases, routes, defaults, and staging/prod overlays.
VALID_TOML = """
[defaults]
deadline_s = 45
max_attempts = 3
timeout_s = 20

[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[providers.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"

[providers.google]
kind = "gemini"
api_key_env = "GEMINI_API_KEY"
timeout_s = 15

[providers.azure]
kind = "azure-openai"
base_url = "https://contoso.openai.azure.com"
api_version = "2024-10-21"
api_key_env = "AZURE_OPENAI_API_KEY"

[providers.local]
kind = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1"
headers = { X-Team = "search" }

[models.gpt-4o-mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
cached_input_usd_per_mtok = 0.075
capabilities = ["tools", "vision", "json", "streaming"]
rpm = 500
tpm = 200000

[models.o3-mini]
provider = "openai"
model = "o3-mini-2025-01-31"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 100000
input_usd_per_mtok = 1.10
output_usd_per_mtok = 4.40
reasoning_usd_per_mtok = 4.40
capabilities = ["tools", "json", "streaming", "reasoning"]

[models.claude-haiku]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4

[models.gemini-flash]
provider = "google"
model = "gemini-2.0-flash"
tokenizer = "o200k_base"
context_window = 1048576
max_output_tokens = 8192
input_usd_per_mtok = 0.10
output_usd_per_mtok = 0.40

[models.azure-4o]
provider = "azure"
model = "gpt-4o-prod-deployment"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 2.50
output_usd_per_mtok = 10.00

[models.llama]
provider = "local"
model = "meta-llama/Llama-3.1-8B-Instruct"
tokenizer = "cl100k_base"
context_window = 8192
max_output_tokens = 2048
input_usd_per_mtok = 0
output_usd_per_mtok = 0

[aliases]
chat = "gpt-4o-mini"
fast = "chat"
helpdesk = "support"

[routes.support]
fallback = ["chat", "claude-haiku", "gemini-flash"]
deadline_s = 20
max_cost_usd = 0.05
max_attempts = 2

[routes.batch]
fallback = ["llama", "gpt-4o-mini"]

[env.staging.aliases]
summarize = "gpt-4o-mini"

[env.staging.models.azure-4o]
model = "gpt-4o-staging-deployment"

[env.staging.providers.azure]
base_url = "https://contoso-staging.openai.azure.com"

[env.prod.aliases]
summarize = "claude-haiku"

[env.prod.routes.support]
deadline_s = 10
"""


def valid_data() -> dict[str, Any]:
    """A fresh copy of the valid config as data, for a test to break."""
    return copy.deepcopy(tomllib.loads(VALID_TOML))


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, list[str]]:
    """The problems of a ConfigError, grouped by key."""
    grouped: dict[str, list[str]] = {}
    for problem in exc.value.problems:
        grouped.setdefault(problem.key, []).append(problem.message)
    return grouped


def load_problems(data: dict[str, Any], **kwargs: Any) -> dict[str, list[str]]:
    """The problems loading ``data`` reports, grouped by key (the load must fail)."""
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data, **kwargs)
    return problems_of(exc)
