"""FakeProvider's embeddings endpoints: the official openai SDK (OpenAI and AzureOpenAI) reads
its answers, vectors are deterministic and of the dimension asked, usage is counted, Gemini's
``embedContent`` / ``batchEmbedContents`` answer in Gemini's shape, and scripts apply."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import openai
import pytest

from guardedllm.testing import FakeProvider


@pytest.fixture
def client(fake_provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=fake_provider.openai_base_url, api_key="sk-test", max_retries=0
    ) as c:
        yield c


def test_the_sdk_reads_floats_and_base64(client: openai.OpenAI) -> None:
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    packed = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], dimensions=8
    )
    plain = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], dimensions=8, encoding_format="float"
    )
    assert [len(e.embedding) for e in packed.data] == [8, 8]
    assert [e.embedding for e in packed.data] == [e.embedding for e in plain.data]
    assert packed.data[0].embedding != packed.data[1].embedding
    assert math.isclose(sum(x * x for x in plain.data[0].embedding), 1.0, rel_tol=1e-5)
    assert plain.usage.prompt_tokens == plain.usage.total_tokens == 2
    default = client.embeddings.create(model="text-embedding-3-small", input="a")
    assert len(default.data[0].embedding) == 1536
    assert default.data[0].embedding[:8] != plain.data[0].embedding  # another dimension


def test_azure_sdk(fake_provider: FakeProvider) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=fake_provider.azure_base_url,
        api_version="2024-10-21",
        api_key="az-key",
        max_retries=0,
    ) as azure:
        resp = azure.embeddings.create(model="prod-embeddings", input=[[1, 2, 3]], dimensions=4)
    assert len(resp.data[0].embedding) == 4
    assert resp.usage.prompt_tokens == 3
    (sent,) = fake_provider.requests
    assert sent.path == "/openai/deployments/prod-embeddings/embeddings"
    assert (sent.vendor, sent.endpoint) == ("azure", "embeddings")


def test_scripts_apply_to_embeddings(client: openai.OpenAI, fake_provider: FakeProvider) -> None:
    fake_provider.script(endpoint="embeddings", status=429, times=1)
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="a")
    assert client.embeddings.create(model="text-embedding-3-small", input="a").data


def test_bad_input_is_the_apis_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="input"):
        client.embeddings.create(model="text-embedding-3-small", input=[])


def test_gemini_embed_and_batch(fake_provider: FakeProvider) -> None:
    base = f"{fake_provider.gemini_base_url}/v1beta/models/gemini-embedding-001"
    one = httpx.post(
        f"{base}:embedContent",
        json={"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 6},
    )
    assert one.status_code == 200
    assert len(one.json()["embedding"]["values"]) == 6
    batch = httpx.post(
        f"{base}:batchEmbedContents",
        json={
            "requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}}
                for t in ("hello", "bye")
            ]
        },
    )
    assert batch.status_code == 200
    vectors = [e["values"] for e in batch.json()["embeddings"]]
    assert [len(v) for v in vectors] == [3072, 3072]
    assert "usageMetadata" not in batch.json()  # as Gemini: no usage for embeddings
    too_many = httpx.post(
        f"{base}:batchEmbedContents",
        json={
            "requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}
            ]
            * 101
        },
    )
    assert too_many.status_code == 400
