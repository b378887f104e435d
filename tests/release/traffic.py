"""Helpers for the release tools' tests: a config with deployments of known prices and limits,
and traffic files written by hand to the record format."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# "hello world" from a user: 9 tokens in o200k_base (see tests/estimate/test_count.py).
HELLO = [{"role": "user", "content": "hello world"}]
HELLO_TOKENS = 9

CONFIG = """
[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[providers.anthropic]
kind = "anthropic"
api_key_env = "ANTHROPIC_API_KEY"

[models.mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
rpm = 10
tpm = 100000

[models.turbo]
provider = "openai"
model = "gpt-4-turbo-2024-04-09"
tokenizer = "cl100k_base"
context_window = 128000
max_output_tokens = 4096
input_usd_per_mtok = 10.0
output_usd_per_mtok = 30.0

[models.haiku]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4.00
rpm = 4

[models.tiny]
provider = "openai"
model = "tiny-model"
tokenizer = "o200k_base"
context_window = 1000
max_output_tokens = 500
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0

[routes.support]
fallback = ["mini", "haiku"]
max_cost_usd = 0.01

[aliases]
chat = "support"
"""


def write_config(tmp_path: Path, text: str = CONFIG) -> str:
    path = tmp_path / "guardedllm.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def write_lines(path: Path, lines: Iterable[Any]) -> str:
    """One line per item: a dict or list is written as JSON, a str as it is."""
    with path.open("w", encoding="utf-8") as file:
        for line in lines:
            file.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return str(path)


def body(messages: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    """An OpenAI chat-completion request body."""
    return {"model": "mini", "messages": messages or HELLO, **fields}


def call(
    *,
    deployment: str | None = "mini",
    status: str = "ok",
    latency_s: float | None = 1.0,
    cost_usd: float | None = 0.001,
    **fields: Any,
) -> dict[str, Any]:
    """A recorder ``call`` line; ``fields`` override the top level, ``outcome`` is merged."""
    outcome = {
        "status": status,
        "error_type": None if status != "error" else "ServerError",
        "attempts": 1,
        "retries": 0,
        "fallbacks": 0,
        "escalated": False,
        "latency_s": latency_s,
        "first_chunk_s": None,
        "input_tokens": 9,
        "output_tokens": 20,
        "cost_usd": cost_usd,
        "finish_reason": "stop" if status == "ok" else None,
        **fields.pop("outcome", {}),
    }
    return {
        "v": 1,
        "kind": "call",
        "id": "5f0c2a9e8b7d4c1a",
        "time": 1764896523.456,
        "env": None,
        "requested": "chat",
        "route": "support",
        "split": None,
        "arm": None,
        "shadow_of": None,
        "deployment": deployment,
        "vendor_model": "gpt-4o-mini-2024-07-18" if deployment == "mini" else deployment,
        "request": {
            "messages": 1,
            "tokens": {"o200k_base": HELLO_TOKENS},
            "exact": {"o200k_base": True},
            "tools": 0,
            "max_tokens": 100,
            "stream": False,
            "params": {},
        },
        "body": None,
        "outcome": outcome,
        **fields,
    }
