"""Helpers shared across the suite: a config pointed at a FakeProvider, and ``make_call``, which
runs one scenario through Client and AsyncClient (asyncio and trio) so that every client
behaviour is tested through every driver."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import anyio
import attrs

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.state import StateBackend
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion, ChatCompletionChunk, GuardInfo

# Keys the fake accepts; the clients read them from this mapping, never from os.environ.
ENVIRON = {
    "TEST_OPENAI_KEY": "sk-test-openai-0123456789",
    "TEST_AZURE_KEY": "azure-test-key-0123456789",
    "TEST_ANTHROPIC_KEY": "sk-ant-test-0123456789",
    "TEST_GEMINI_KEY": "AIzaTestGeminiKey0123456789abcdef",
}

# The defaults and every vendor's provider, pointed at a FakeProvider by ``.format``.
PROVIDERS = """
[defaults]
deadline_s = 10
max_attempts = 2
timeout_s = 5

[providers.openai]
kind = "openai"
base_url = "{openai}"
api_key_env = "TEST_OPENAI_KEY"

[providers.azure]
kind = "azure-openai"
base_url = "{azure}"
api_key_env = "TEST_AZURE_KEY"
api_version = "2024-10-21"

[providers.local]
kind = "openai-compatible"
base_url = "{openai}"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "TEST_ANTHROPIC_KEY"

[providers.gemini]
kind = "gemini"
base_url = "{gemini}"
api_key_env = "TEST_GEMINI_KEY"

"""

CONFIG = (
    PROVIDERS
    + """
[models.gpt-4o-mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
cached_input_usd_per_mtok = 0.075
capabilities = ["tools", "vision", "json"]

[models.azure-4o]
provider = "azure"
model = "prod-gpt-4o"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
capabilities = ["tools", "vision", "json"]

[models.llama]
provider = "local"
model = "llama-3.1-8b-instruct"
tokenizer = "cl100k_base"
context_window = 8192
max_output_tokens = 2048
input_usd_per_mtok = 0.0
output_usd_per_mtok = 0.0
capabilities = ["tools", "json"]

[models.claude-haiku]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4.00
capabilities = ["tools", "vision", "json"]

[models.gemini-flash]
provider = "gemini"
model = "gemini-2.0-flash"
tokenizer = "o200k_base"
context_window = 1048576
max_output_tokens = 8192
input_usd_per_mtok = 0.10
output_usd_per_mtok = 0.40
capabilities = ["tools", "vision", "json"]

[aliases]
chat = "gpt-4o-mini"

[routes.support]
fallback = ["gpt-4o-mini", "claude-haiku", "gemini-flash"]
"""
)

DEPLOYMENTS = ["gpt-4o-mini", "azure-4o", "llama", "claude-haiku", "gemini-flash"]


def config_text(fake: FakeProvider) -> str:
    return CONFIG.format(
        openai=fake.openai_base_url,
        azure=fake.azure_base_url,
        anthropic=fake.anthropic_base_url,
        gemini=fake.gemini_base_url,
    )


def config_at(url: str) -> str:
    """The config with every provider at ``url``, laid out as on a FakeProvider (for a raw
    server of a test's own, ``raw_server.py``)."""
    return CONFIG.format(openai=f"{url}/v1", azure=url, anthropic=url, gemini=url)


@attrs.frozen
class Streamed:
    """What a streamed call gave the caller, whichever driver ran it."""

    chunks: list[ChatCompletionChunk]
    guard: GuardInfo
    completed: bool

    @property
    def content(self) -> str:
        return "".join(
            choice.delta.content or "" for chunk in self.chunks for choice in chunk.choices
        )


Call = Callable[..., Any]

# Makes the state backend of each client a whole-call test builds without naming one (None: the
# client's own memory). A module runs its guard tests on memory and on Redis alike with
# ``pytestmark = pytest.mark.usefixtures("on_both_backends")`` (see conftest.py).
GUARD_STATE: ContextVar[Callable[[], StateBackend] | None] = ContextVar("GUARD_STATE", default=None)


def with_guard_state(client_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``client_kwargs`` with a fresh backend of the test's kind, unless they name one."""
    new_state = GUARD_STATE.get()
    if new_state is not None and client_kwargs.get("state") is None:
        client_kwargs["state"] = new_state()
    return client_kwargs


DRIVERS = ["sync", "asyncio", "trio"]


def make_call(
    driver: str, registry: Registry, *, policy: Policy | None = None, **client_kwargs: Any
) -> Call:
    """``create(**kwargs)`` through ``driver``; a stream is read to its end into ``Streamed``.
    Backoff jitter is zero unless the test passes ``random=``, so retries do not sleep."""
    client_kwargs.setdefault("environ", ENVIRON)
    client_kwargs.setdefault("random", lambda: 0.0)
    new_state = GUARD_STATE.get()

    def sync_call(**kwargs: Any) -> ChatCompletion | Streamed:
        if new_state is not None:  # a fresh store per client, as memory is
            client_kwargs["state"] = new_state()
        with Client(registry, policy=policy, **client_kwargs) as client:
            result = client.chat.completions.create(**kwargs)
            if kwargs.get("stream"):
                chunks = list(result)
                return Streamed(chunks, result.guard, result.completed)
            assert isinstance(result, ChatCompletion)
            return result

    async def async_call(**kwargs: Any) -> ChatCompletion | Streamed:
        if new_state is not None:
            client_kwargs["state"] = new_state()
        async with AsyncClient(registry, policy=policy, **client_kwargs) as client:
            result = await client.chat.completions.create(**kwargs)
            if kwargs.get("stream"):
                chunks = [chunk async for chunk in result]
                return Streamed(chunks, result.guard, result.completed)
            assert isinstance(result, ChatCompletion)
            return result

    if driver == "sync":
        return sync_call

    def run_async(**kwargs: Any) -> ChatCompletion | Streamed:
        return anyio.run(lambda: async_call(**kwargs), backend=driver)

    return run_async
