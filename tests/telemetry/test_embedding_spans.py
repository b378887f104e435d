"""Spans and metrics of embeddings calls, through every driver: ``gen_ai.operation.name`` is
"embeddings" on the call span, each attempt span and the operation metrics, and the span
names say so ("embeddings {model}"), as the GenAI conventions ask."""

from __future__ import annotations

import anyio
import pytest

from guardedllm import AsyncClient, Client, Registry
from guardedllm.telemetry import _semconv as sc
from guardedllm.testing import FakeProvider
from support import ENVIRON

from ._recording import Recorded

CONFIG = """
[providers.openai]
kind = "openai"
base_url = "{openai}"
api_key_env = "TEST_OPENAI_KEY"

[models.small]
provider = "openai"
model = "text-embedding-3-small"
dimensions = 1536
"""


def test_embeddings_spans_and_metrics(
    driver: str, fake_provider: FakeProvider, recorded: Recorded
) -> None:
    registry = Registry.from_toml_text(CONFIG.format(openai=fake_provider.openai_base_url))
    fake_provider.script(model="text-embedding-3-small", status=503, times=1)
    kwargs = {"environ": ENVIRON, "telemetry": recorded.telemetry, "random": lambda: 0.0}
    if driver == "sync":
        with Client(registry, **kwargs) as client:
            client.embeddings.create(model="small", input=["a", "b"], dimensions=4)
    else:

        async def run() -> None:
            async with AsyncClient(registry, **kwargs) as client:
                await client.embeddings.create(model="small", input=["a", "b"], dimensions=4)

        anyio.run(run, backend=driver)
    call = recorded.span("embeddings small")
    attempts = [s for s in recorded.spans() if s.name == "embeddings text-embedding-3-small"]
    assert len(attempts) == 2  # the 503, and its retry
    for span in (call, *attempts):
        assert (span.attributes or {})[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert (attempts[-1].attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    points = recorded.points("gen_ai.client.operation.duration")
    operations = {point.attributes[sc.GEN_AI_OPERATION_NAME] for point in points}
    assert operations == {"embeddings"}


@pytest.mark.parametrize("driver", ["sync"])
def test_chat_calls_keep_their_operation(
    driver: str, fake_provider: FakeProvider, recorded: Recorded
) -> None:
    text = CONFIG + '\n[models.chat]\nprovider = "openai"\nmodel = "gpt-4o-mini"\n'
    registry = Registry.from_toml_text(text.format(openai=fake_provider.openai_base_url))
    with Client(registry, environ=ENVIRON, telemetry=recorded.telemetry) as client:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    call = recorded.span("chat chat")
    assert (call.attributes or {})[sc.GEN_AI_OPERATION_NAME] == "chat"
