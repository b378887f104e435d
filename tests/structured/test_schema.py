"""Structured outputs' pure core: an answer checked against its JSON schema, and a pydantic
model turned into a strict ``json_schema`` response format and back."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from guardedllm._structured import response_format_for, schema_of, schema_problems, with_parsed
from guardedllm.errors import ArgumentTypeError
from guardedllm.types import ChatCompletion, ChatCompletionMessage, Choice

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def answer(
    *contents: str | None, finish: Any = "stop", refusal: str | None = None
) -> ChatCompletion:
    return ChatCompletion(
        id="c",
        created=0,
        model="m",
        usage=None,
        choices=tuple(
            Choice(
                index=i,
                message=ChatCompletionMessage(content=c, refusal=refusal),
                finish_reason=finish,
            )
            for i, c in enumerate(contents)
        ),
    )


def test_a_valid_answer_has_no_problems() -> None:
    assert schema_problems(answer('{"city": "Paris", "population": 2100000}'), CITY) == []


def test_a_wrong_type_is_named_with_its_place() -> None:
    problems = schema_problems(answer('{"city": 42, "population": 1}'), CITY)
    assert problems == ["choices[0]: at $ ['city']: 42 is not of type 'string'"]


def test_missing_and_extra_properties_are_problems() -> None:
    problems = schema_problems(answer('{"city": "Oslo", "mayor": "x"}'), CITY)
    assert any("'population' is a required property" in p for p in problems)
    assert any("Additional properties are not allowed ('mayor'" in p for p in problems)


def test_text_that_is_not_json_says_so_and_whether_it_was_cut() -> None:
    (plain,) = schema_problems(answer("Paris"), CITY)
    assert plain.startswith("choices[0]: not JSON: ")
    (cut,) = schema_problems(answer('{"city": "Par', finish="length"), CITY)
    assert "cut at its token limit" in cut


def test_a_refusal_or_a_tool_call_is_not_checked() -> None:
    assert schema_problems(answer(None), CITY) == []
    assert schema_problems(answer("I can't help with that", refusal="no"), CITY) == []


def test_every_choice_is_checked_and_the_list_is_bounded() -> None:
    problems = schema_problems(answer(*['{"city": 1, "population": "x"}'] * 4), CITY)
    assert problems[0].startswith("choices[0]")
    assert problems[-1] == "... and 3 more"
    assert len(problems) == 6


def test_schema_of_reads_only_a_json_schema_format() -> None:
    assert schema_of({"type": "json_schema", "json_schema": {"name": "x", "schema": CITY}}) == CITY
    assert schema_of({"type": "json_object"}) is None
    assert schema_of({"type": "json_schema", "json_schema": {"name": "x"}}) is None
    assert schema_of(None) is None


class City(pydantic.BaseModel):
    city: str
    population: int
    nickname: str | None = None


def test_a_pydantic_model_becomes_a_strict_json_schema_format() -> None:
    fmt = response_format_for(City)
    assert fmt["type"] == "json_schema"
    spec = fmt["json_schema"]
    assert (spec["name"], spec["strict"]) == ("City", True)
    schema = spec["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "population", "nickname"]  # strict: all required
    # What the schema accepts, the model parses.
    text = '{"city": "Paris", "population": 2, "nickname": null}'
    assert schema_problems(answer(text), schema) == []
    parsed = with_parsed(answer(text), City).choices[0].message.parsed
    assert parsed == City(city="Paris", population=2)


def test_parsed_dumps_as_plain_data() -> None:
    done = with_parsed(answer('{"city": "Rome", "population": 3, "nickname": null}'), City)
    dumped = done.model_dump()
    assert dumped["choices"][0]["message"]["parsed"] == {
        "city": "Rome",
        "population": 3,
        "nickname": None,
    }
    json.loads(done.model_dump_json())


def test_a_class_that_is_no_pydantic_model_is_a_typed_error() -> None:
    with pytest.raises(ArgumentTypeError, match="no pydantic model"):
        response_format_for(dict)
