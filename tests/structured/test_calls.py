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
from support import ENVIRON, config_text, make_call

MESSAGES = [{"role": "user", "content": "Which city? Answer in JSON."}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"


class City(pydantic.BaseModel):
    city: str
    population: int = pydantic.Field(ge=0)

    @pydantic.field_validator("city")
    @classmethod
    def _a_name(cls, value: str) -> str:  # a rule no JSON schema states: the model's own
        if not value.istitle():
            raise ValueError("a city's name starts with a capital")
        return value


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
    # Valid against the JSON schema, refused by the model's own validator.
    fake_provider.script(model=OPENAI_ID, content='{"city": "nowhere", "population": 1}')
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


CITY_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}

ESCALATING = """
[routes.small-first]
fallback = ["llama"]
escalate_to = "gpt-4o-mini"
"""


def test_an_answer_against_its_schema_fails_the_call_with_the_answer_attached(
    call: Any, fake_provider: FakeProvider
) -> None:
    """{"city": 42} against a string schema: the vendor answered (and was billed), the call
    fails with StructuredOutputError naming the place, not as a valid answer."""
    fake_provider.script(model=OPENAI_ID, content='{"city": 42}')
    with pytest.raises(StructuredOutputError, match=r"at \$ \['city'\]: 42 is not of type") as info:
        call(model="gpt-4o-mini", messages=MESSAGES, response_format=CITY_FORMAT)
    assert isinstance(info.value.completion, ChatCompletion)
    assert len(fake_provider.requests) == 1  # not retried: the vendor answered


def test_a_valid_answer_passes(call: Any, fake_provider: FakeProvider) -> None:
    fake_provider.script(model=OPENAI_ID, content='{"city": "Paris"}')
    response = call(model="gpt-4o-mini", messages=MESSAGES, response_format=CITY_FORMAT)
    assert response.choices[0].message.content == '{"city": "Paris"}'


def test_an_answer_against_its_schema_escalates_where_the_route_escalates(
    driver: str, fake_provider: FakeProvider
) -> None:
    registry = Registry.from_toml_text(config_text(fake_provider) + ESCALATING)
    fake_provider.script(model="llama-3.1-8b-instruct", content='{"town": "Paris"}')
    fake_provider.script(model=OPENAI_ID, content='{"city": "Paris"}')
    response = make_call(driver, registry)(
        model="small-first", messages=MESSAGES, response_format=CITY_FORMAT
    )
    assert response.guard.deployment == "gpt-4o-mini"
    assert [a.deployment for a in response.guard.attempts] == ["llama", "gpt-4o-mini"]
    assert any("validator rejected" in d for d in response.guard.decisions)
