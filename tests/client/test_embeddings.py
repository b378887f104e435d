"""Embeddings through every driver against FakeProvider: answers in OpenAI's shape (checked
against the openai package's types), base64 and dimensions, batch limits refused before
sending, fallback between embedding models of one dimension, and the guards (cost cap, spend
budget, rate limit, breaker, retry) applying to embeddings calls as to chat calls.

Figures come from counts (requests the fake received, errors raised), never from wall time.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

import anyio
import openai
import pytest

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.errors import (
    AllRoutesFailedError,
    BudgetExceededError,
    CircuitOpenError,
    EmbeddingBatchError,
    GuardedLLMError,
    InvalidRequestError,
    ModelKindError,
    RateLimitedError,
)
from guardedllm.estimate import get_encoding
from guardedllm.guards import BreakerConfig, SpendBudget
from guardedllm.testing import FakeProvider
from guardedllm.types import CreateEmbeddingResponse
from support import ENVIRON, PROVIDERS

CONFIG = (
    PROVIDERS
    + """
[models.small]                     # everything else from the model catalog
provider = "openai"
model = "text-embedding-3-small"
dimensions = 1536

[models.azure-small]
provider = "azure"
model = "prod-embeddings"
kind = "embedding"
tokenizer = "cl100k_base"
context_window = 8191
input_usd_per_mtok = 0.02
dimensions = 1536

[models.local-embed]
provider = "local"
model = "bge-small"
kind = "embedding"
tokenizer = "cl100k_base"
context_window = 512
input_usd_per_mtok = 0.0
dimensions = 384
max_batch_items = 3

[models.gemini-embed]
provider = "gemini"
model = "gemini-embedding-001"
dimensions = 3072

[models.chat]
provider = "openai"
model = "gpt-4o-mini"

[routes.vectors]
fallback = ["small", "azure-small"]
"""
)

SMALL_ID = "text-embedding-3-small"
TEXTS = ["Where is my parcel?", "Refund, please.", "Opening hours"]


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(
        CONFIG.format(
            openai=fake_provider.openai_base_url,
            azure=fake_provider.azure_base_url,
            anthropic=fake_provider.anthropic_base_url,
            gemini=fake_provider.gemini_base_url,
        ),
        source="test-config",
    )


Outcome = CreateEmbeddingResponse | GuardedLLMError


def embed_all(
    driver: str, registry: Registry, calls: Sequence[dict[str, Any]], **client_kwargs: Any
) -> list[Outcome]:
    """Each of ``calls`` (``embeddings.create``'s arguments) in turn on one client of
    ``driver``; a guardedllm error is the call's outcome."""
    client_kwargs.setdefault("environ", ENVIRON)
    client_kwargs.setdefault("random", lambda: 0.0)
    if driver == "sync":
        outcomes: list[Outcome] = []
        with Client(registry, **client_kwargs) as client:
            for kwargs in calls:
                try:
                    outcomes.append(client.embeddings.create(**kwargs))
                except GuardedLLMError as exc:
                    outcomes.append(exc)
        return outcomes

    async def run() -> list[Outcome]:
        found: list[Outcome] = []
        async with AsyncClient(registry, **client_kwargs) as client:
            for kwargs in calls:
                try:
                    found.append(await client.embeddings.create(**kwargs))
                except GuardedLLMError as exc:
                    found.append(exc)
        return found

    return anyio.run(run, backend=driver)


def embed(driver: str, registry: Registry, **kwargs: Any) -> CreateEmbeddingResponse:
    (outcome,) = embed_all(driver, registry, [kwargs])
    if isinstance(outcome, GuardedLLMError):
        raise outcome
    return outcome


def floats_of(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("model", ["small", "azure-small", "local-embed", "gemini-embed"])
def test_answer_has_openais_shape(
    driver: str, registry: Registry, fake_provider: FakeProvider, model: str
) -> None:
    resp = embed(driver, registry, model=model, input=TEXTS, dimensions=16)
    assert [e.index for e in resp.data] == [0, 1, 2]
    assert all(len(e.embedding) == 16 for e in resp.data)
    assert resp.data[0].embedding != resp.data[1].embedding
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens
    # The openai package reads our answer as its own.
    theirs = openai.types.CreateEmbeddingResponse.model_validate(resp.model_dump())
    assert theirs.data[2].embedding == resp.data[2].embedding
    assert resp.guard is not None
    assert resp.guard.deployment == model
    assert resp.guard.cost_usd is not None
    assert resp.guard.estimate.max_output_tokens == 0
    (sent,) = fake_provider.requests
    assert sent.endpoint == "embeddings"


def test_one_text_and_token_ids(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    one = embed(driver, registry, model="small", input="Where is my parcel?", dimensions=8)
    assert len(one.data) == 1
    ids = embed(driver, registry, model="small", input=[[1, 2, 3], [4, 5]], dimensions=8)
    assert len(ids.data) == 2
    # OpenAI counts token ids as given: 5 tokens, exactly as estimated.
    assert ids.usage is not None
    assert ids.usage.prompt_tokens == 5
    assert ids.guard is not None
    assert ids.guard.estimate.input_tokens == 5
    sent = [r.json for r in fake_provider.requests]
    assert sent[0]["input"] == "Where is my parcel?"
    assert sent[1]["input"] == [[1, 2, 3], [4, 5]]


def test_openai_estimate_is_exact_tiktoken(driver: str, registry: Registry) -> None:
    resp = embed(driver, registry, model="small", input=TEXTS, dimensions=8)
    encoding = get_encoding("cl100k_base")  # the bundled one: tiktoken would download it
    assert resp.guard is not None
    estimate = resp.guard.estimate
    assert estimate.exact
    assert estimate.input_tokens == sum(len(encoding.encode_ordinary(t)) for t in TEXTS)
    assert estimate.cost_usd_max == pytest.approx(estimate.input_tokens * 0.02 / 1e6)


@pytest.mark.parametrize("model", ["small", "gemini-embed"])
def test_base64_is_float32_of_the_same_vectors(
    driver: str, registry: Registry, fake_provider: FakeProvider, model: str
) -> None:
    floats, encoded = embed_all(
        driver,
        registry,
        [
            {"model": model, "input": TEXTS, "dimensions": 12},
            {"model": model, "input": TEXTS, "dimensions": 12, "encoding_format": "base64"},
        ],
    )
    assert isinstance(floats, CreateEmbeddingResponse)
    assert isinstance(encoded, CreateEmbeddingResponse)
    for plain, packed in zip(floats.data, encoded.data, strict=True):
        assert isinstance(packed.embedding, str)
        assert floats_of(packed.embedding) == plain.embedding
    # (openai's type holds floats only: its SDK decodes base64 before building it.)


def test_gemini_wire_and_estimated_usage(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    batch = embed(driver, registry, model="gemini-embed", input=TEXTS, dimensions=8)
    one = embed(driver, registry, model="gemini-embed", input="hello", dimensions=8)
    # With no dimensions from the caller, the deployment's declared ones are asked for.
    declared = embed(driver, registry, model="gemini-embed", input="hello")
    assert len(declared.data[0].embedding) == 3072
    first, second, third = fake_provider.requests
    assert third.json["outputDimensionality"] == 3072
    assert first.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["outputDimensionality"] for r in first.json["requests"]] == [8, 8, 8]
    assert second.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert second.json["content"] == {"parts": [{"text": "hello"}]}
    # Gemini reports no usage: the answer's is the estimate's, and its notes say so.
    for resp in (batch, one):
        assert resp.guard is not None
        assert resp.usage is not None
        estimate = resp.guard.estimate
        assert resp.usage.prompt_tokens == estimate.input_tokens
        assert not estimate.exact
        assert any("Gemini reports no usage" in note for note in estimate.notes)
        assert resp.guard.cost_usd == pytest.approx(estimate.cost_usd_max)


# --------------------------------------------------------------------------- refusals


def test_batch_over_the_item_limit_is_refused_before_sending(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    with pytest.raises(EmbeddingBatchError, match="batches of at most 3") as info:
        embed(driver, registry, model="local-embed", input=["a", "b", "c", "d"])
    assert info.value.limit == "items"
    assert fake_provider.requests == []


def test_an_input_over_the_token_limit_is_refused_naming_it(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    long = "parcel " * 600  # 600 tokens with cl100k_base; local-embed takes 512 per input
    with pytest.raises(EmbeddingBatchError, match=r"input\[1\]") as info:
        embed(driver, registry, model="local-embed", input=["short", long])
    assert (info.value.limit, info.value.index) == ("item_tokens", 1)
    assert fake_provider.requests == []


def test_gemini_batches_are_limited_to_100(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    with pytest.raises(EmbeddingBatchError, match="at most 100"):
        embed(driver, registry, model="gemini-embed", input=[f"t{i}" for i in range(101)])
    assert fake_provider.requests == []


def test_a_call_of_the_other_kind_is_refused_naming_the_model(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    with pytest.raises(ModelKindError, match="chat is a chat model") as info:
        embed(driver, registry, model="chat", input="x")
    assert info.value.deployment == "chat"
    if driver == "sync":
        with (
            Client(registry, environ=ENVIRON) as client,
            pytest.raises(ModelKindError, match="small is an embedding model"),
        ):
            client.chat.completions.create(
                model="small", messages=[{"role": "user", "content": "x"}]
            )
    assert fake_provider.requests == []


def test_hedging_is_refused_for_embeddings(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    with pytest.raises(InvalidRequestError, match="hedging"):
        embed(driver, registry, model="vectors", input="x", policy=Policy(hedge_after_s=0.1))
    assert fake_provider.requests == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input": []}, "input must be"),
        ({"input": ["ok", 3]}, r"input\[1\]"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_bad_arguments_are_refused(
    registry: Registry, kwargs: dict[str, Any], message: str
) -> None:
    with (
        Client(registry, environ=ENVIRON) as client,
        pytest.raises(InvalidRequestError, match=message),
    ):
        client.embeddings.create(model="small", **kwargs)


# --------------------------------------------------------------------------- guards


def test_fallback_between_models_of_one_dimension(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=SMALL_ID, status=503, times=2)
    resp = embed(driver, registry, model="vectors", input=TEXTS)
    assert resp.guard is not None
    assert resp.guard.deployment == "azure-small"
    assert [(a.deployment, a.outcome) for a in resp.guard.attempts] == [
        ("small", "error"),
        ("small", "error"),
        ("azure-small", "ok"),
    ]
    assert len(resp.data[0].embedding) == 1536


def test_cost_cap_refuses_before_sending(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    with pytest.raises(BudgetExceededError, match=r"over the .* cap") as info:
        embed(driver, registry, model="vectors", input=TEXTS, policy=Policy(max_cost_usd=1e-9))
    assert info.value.cost_usd > 1e-9
    assert fake_provider.requests == []


def test_spend_budget_is_reserved_and_settled(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    # "Where is my parcel?" is 5 tokens with cl100k_base, as the fake counts it too: each call
    # reserves and settles 1e-7 USD, so the budget fits two calls, not three.
    budget = SpendBudget(scope="global", window="day", limit_usd=2.5e-7)
    outcomes = embed_all(
        driver, registry, [{"model": "small", "input": TEXTS[0]}] * 3, budgets=[budget]
    )
    assert [type(o).__name__ for o in outcomes] == [
        "CreateEmbeddingResponse",
        "CreateEmbeddingResponse",
        "BudgetExceededError",
    ]
    assert len(fake_provider.requests) == 2


def test_rate_limit_applies(driver: str, registry: Registry, fake_provider: FakeProvider) -> None:
    limited = Registry.from_toml_text(
        CONFIG.format(
            openai=fake_provider.openai_base_url,
            azure=fake_provider.azure_base_url,
            anthropic=fake_provider.anthropic_base_url,
            gemini=fake_provider.gemini_base_url,
        ).replace(
            "dimensions = 1536\n\n[models.azure", "dimensions = 1536\nrpm = 1\n\n[models.azure", 1
        )
    )
    assert limited.models["small"].rpm == 1
    outcomes = embed_all(
        driver,
        limited,
        [{"model": "small", "input": "x", "policy": Policy(deadline_s=1)}] * 2,
    )
    assert isinstance(outcomes[0], CreateEmbeddingResponse)
    assert isinstance(outcomes[1], RateLimitedError | AllRoutesFailedError)
    assert len(fake_provider.requests) == 1


def test_breaker_opens_and_retries_apply(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=SMALL_ID, status=500)
    breaker = BreakerConfig(minimum_calls=2, failure_rate_threshold=0.5)
    calls = [{"model": "small", "input": "x"}] * 3
    outcomes = embed_all(driver, registry, calls, breaker=breaker)
    # The first call is retried once (max_attempts = 2), and its two failures open the
    # breaker: the next calls send nothing.
    assert [type(o) for o in outcomes] == [AllRoutesFailedError, CircuitOpenError, CircuitOpenError]
    assert len(fake_provider.requests) == 2


def test_gemini_estimated_usage_is_not_learned_as_the_vendors(
    driver: str, registry: Registry
) -> None:
    # Calibration learning the estimate back as the vendor's count would scale every next
    # estimate by the safety margin again: 10 % more per call.
    calls = [{"model": "gemini-embed", "input": TEXTS, "dimensions": 4}] * 3
    outcomes = embed_all(driver, registry, calls)
    tokens = set()
    for outcome in outcomes:
        assert isinstance(outcome, CreateEmbeddingResponse)
        assert outcome.guard is not None
        tokens.add(outcome.guard.estimate.input_tokens)
    assert len(tokens) == 1
