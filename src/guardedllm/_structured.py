"""Structured outputs: an answer to a ``response_format={"type": "json_schema", ...}`` request
checked against its schema, and a pydantic model turned into such a request and back
(``chat.completions.parse``), as openai-python does.

Pure: no I/O. ``jsonschema`` (a dependency) and ``pydantic`` (the caller's, optional) are
imported on first use, never by ``import guardedllm``. Validators are compiled once per distinct
schema and kept (``_VALIDATORS_KEPT`` of them), so a schema sent on every call costs one compile.

What is checked: each choice that answered with text (not a refusal, not a tool call) must be
JSON, and that JSON must be valid against the schema (JSON Schema 2020-12, the draft OpenAI's
structured outputs follow). A choice cut at its token limit is checked too: its JSON is most
likely cut short, which is exactly what a caller relying on the schema must hear about.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from guardedllm.errors import ArgumentTypeError, StructuredOutputError

if TYPE_CHECKING:
    from guardedllm.types import ChatCompletion

__all__ = [
    "answer_check",
    "parse_format",
    "require_schema",
    "response_format_for",
    "schema_of",
    "schema_problems",
    "with_parsed",
]

# Distinct schemas whose compiled validator is kept: an application has a handful.
_VALIDATORS_KEPT = 64
# Problems a message lists: enough to fix the schema or the prompt, not a flood.
_PROBLEMS_SHOWN = 5


def schema_of(response_format: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The JSON schema a request asks its answer to follow, or None (no ``json_schema``
    response format, or one without a schema)."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return schema if isinstance(schema, Mapping) else None


def schema_problems(completion: ChatCompletion, schema: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``completion``'s answers against ``schema`` (empty: all valid). Each
    problem names the choice and, for a schema violation, where in the answer it is."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    problems: list[str] = []
    for choice in completion.choices:
        content = choice.message.content
        if content is None or choice.message.refusal is not None:
            continue  # a refusal or a tool call: nothing was promised in the schema's shape
        where = f"choices[{choice.index}]"
        try:
            answer = json.loads(content)
        except ValueError as error:
            cut = (
                " (the answer was cut at its token limit)"
                if choice.finish_reason == "length"
                else ""
            )
            problems.append(f"{where}: not JSON{cut}: {error}")
            continue
        for wrong in sorted(validator.iter_errors(answer), key=lambda e: list(e.path)):
            path = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in wrong.path)
            problems.append(f"{where}: at $ {path or '(the whole answer)'}: {wrong.message}")
    if len(problems) > _PROBLEMS_SHOWN:
        more = len(problems) - _PROBLEMS_SHOWN
        problems = [*problems[:_PROBLEMS_SHOWN], f"... and {more} more"]
    return problems


@functools.lru_cache(maxsize=_VALIDATORS_KEPT)
def _validator(schema_text: str) -> Any:
    """The compiled validator of a schema (given as canonical JSON text, to be hashable)."""
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def answer_check(
    schema: Mapping[str, Any], validator: Callable[[ChatCompletion], bool] | None
) -> Callable[[ChatCompletion], bool]:
    """The escalation check of a call asking for ``schema``: an answer must match it, and then
    satisfy the caller's own ``validator`` if there is one. On a route that escalates
    "invalid" answers, one that does not match goes to the larger model."""

    def check(completion: ChatCompletion) -> bool:
        if schema_problems(completion, schema):
            return False
        return validator is None or validator(completion)

    return check


def require_schema(completion: ChatCompletion, schema: Mapping[str, Any]) -> None:
    """Raise ``StructuredOutputError`` (with the answer attached) when ``completion`` does not
    match ``schema``: the call's last answer, once escalation, if any, is done."""
    problems = schema_problems(completion, schema)
    if problems:
        raise StructuredOutputError(
            "the answer does not match the JSON schema its response_format asked for: "
            + "; ".join(problems)
            + ". The answer is on .completion (it was billed); tighten the schema or the "
            "prompt, or route to a model that escalates invalid answers (escalate_on).",
            completion=completion,
            problems=problems,
        )


# --------------------------------------------------------------------------- pydantic


def response_format_for(model: type) -> dict[str, Any]:
    """The ``json_schema`` response format for a pydantic model, strict as OpenAI's structured
    outputs want it: every object closed (``additionalProperties: false``) and every property
    required, as openai-python's ``parse`` sends it."""
    schema_method = getattr(model, "model_json_schema", None)
    if not callable(schema_method):
        raise ArgumentTypeError(
            f"response_format={model!r} is no pydantic model (a class with model_json_schema); "
            "pass a pydantic.BaseModel subclass, or a response_format dict to create()"
        )
    schema = _strict(schema_method())
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": schema, "strict": True},
    }


def _strict(node: Any) -> Any:
    """``node`` with every object schema closed and all its properties required."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
        out["required"] = list(out["properties"])
    return out


def parse_format(response_format: Any) -> tuple[Any, type | None]:
    """What ``parse`` sends for its ``response_format``, and the model its answer is read into:
    a pydantic model class as its strict format, a format dict as it is (no model)."""
    if isinstance(response_format, type):
        return response_format_for(response_format), response_format
    return response_format, None


def with_parsed(completion: ChatCompletion, model: type | None) -> ChatCompletion:
    """``completion`` with each answered choice's message ``parsed`` into ``model`` (None
    for a refusal or a tool call), as openai-python's ``ParsedChatCompletion`` gives it; as it
    is without a model."""
    if model is None:
        return completion
    validate = getattr(model, "model_validate_json")  # noqa: B009  # checked by the caller
    choices = []
    for choice in completion.choices:
        message = choice.message
        parsed = None
        if message.content is not None and message.refusal is None:
            try:
                parsed = validate(message.content)
            except ValueError as error:  # pydantic's ValidationError: a model's own rules
                raise StructuredOutputError(
                    f"choices[{choice.index}] does not parse into {model.__name__}: "
                    f"{error}. The answer is on .completion; tighten the schema or the prompt.",
                    completion=completion,
                    problems=(f"choices[{choice.index}]: {error}",),
                ) from error
        choices.append(attrs.evolve(choice, message=attrs.evolve(message, parsed=parsed)))
    return attrs.evolve(completion, choices=tuple(choices))
