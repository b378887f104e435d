"""Structured outputs through whole calls, every driver, against FakeProvider: ``parse`` with a
pydantic model sends a strict schema and reads the answer back into ``message.parsed``; an
answer the model refuses is a ``StructuredOutputError`` with the answer attached."""

from __future__ import annotations

from typing import Any

import anyio
import pydantic
import pytest

from guardedllm import AsyncClient, ChatCompletion, Client, Registry
from guardedllm.errors import StructuredOutputError
from guardedllm.testing import FakeProvider
from support import ENVIRON

MESSAGES = [{"role": "user", "content": "Which city? Answer in JSON."}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"


class City(pydantic.BaseModel):
    city: str
    population: int = pydantic.Field(ge=0)


def parse(driver: str, registry: Registry, **kwargs: Any) -> ChatCompletion:
    if driver == "sync":
        with Client(registry, environ=ENVIRON) as client:
            return client.chat.completions.parse(**kwargs)

    async def run() -> ChatCompletion:
        async with AsyncClient(registry, environ=ENVIRON) as client:
            return await client.chat.completions.parse(**kwargs)

    return anyio.run(run, backend=driver)


def test_parse_reads_the_answer_into_the_model(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, content='{"city": "Paris", "population": 2100000}')
    response = parse(driver, registry, model="gpt-4o-mini", messages=MESSAGES, response_format=City)
    assert response.choices[0].message.parsed == City(city="Paris", population=2_100_000)
    sent = fake_provider.requests[0].json["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "City"
    assert sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["additionalProperties"] is False


def test_an_answer_the_model_refuses_is_a_structured_output_error(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    # Valid against the JSON schema (an integer), refused by the model's own rule (ge=0).
    fake_provider.script(model=OPENAI_ID, content='{"city": "Nowhere", "population": -1}')
    with pytest.raises(StructuredOutputError, match="does not parse into City") as info:
        parse(driver, registry, model="gpt-4o-mini", messages=MESSAGES, response_format=City)
    assert isinstance(info.value.completion, ChatCompletion)
    assert info.value.problems[0].startswith("choices[0]: ")


def test_a_format_dict_is_sent_as_it_is_and_nothing_is_parsed(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, content='{"ok": true}')
    response = parse(
        driver,
        registry,
        model="gpt-4o-mini",
        messages=MESSAGES,
        response_format={"type": "json_object"},
    )
    assert response.choices[0].message.parsed is None
    assert fake_provider.requests[0].json["response_format"] == {"type": "json_object"}
