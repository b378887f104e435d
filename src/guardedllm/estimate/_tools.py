"""Tokens of tool (function) definitions, by the OpenAI cookbook's community formula.

OpenAI does not publish how it renders ``tools`` into the prompt. The cookbook "How to count
tokens with tiktoken", section 7 (``num_tokens_for_tools``), gives a formula whose constants were
fitted to the API and which matched it on the cookbook's weather-tool example (101 prompt tokens
for gpt-4o / gpt-4o-mini, 105 for gpt-4 / gpt-3.5-turbo). Per function: ``func_init`` + tokens of
``"name:description"``; when it has properties, ``prop_init`` and, per property, ``prop_key`` +
tokens of ``"key:type:description"`` (+ ``enum_init`` and ``enum_item`` + tokens per enum value);
``func_end`` once for the whole list. A description's one trailing period is dropped.

Nested object or array schemas, ``$ref``s and other keywords are not modelled, so a count with
tools is always an estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from guardedllm.errors import InvalidRequestError

__all__ = ["ToolFormula", "count_tool_tokens", "tool_formula_for"]


@attrs.frozen(kw_only=True)
class ToolFormula:
    """The cookbook formula's constants for one model family."""

    func_init: int
    prop_init: int
    prop_key: int
    enum_init: int
    enum_item: int
    func_end: int


# gpt-4o / gpt-4o-mini (o200k_base) and gpt-4 / gpt-3.5-turbo (cl100k_base), from the cookbook.
_O200K_FORMULA: Final = ToolFormula(
    func_init=7, prop_init=3, prop_key=3, enum_init=-3, enum_item=3, func_end=12
)
_CL100K_FORMULA: Final = ToolFormula(
    func_init=10, prop_init=3, prop_key=3, enum_init=-3, enum_item=3, func_end=12
)


def tool_formula_for(encoding_name: str) -> ToolFormula:
    """The constants for models using ``encoding_name``; the o200k ones for any other encoding."""
    return _CL100K_FORMULA if encoding_name == "cl100k_base" else _O200K_FORMULA


def _without_final_period(text: str) -> str:
    return text[:-1] if text.endswith(".") else text


def count_tool_tokens(
    tools: Sequence[Mapping[str, Any]], *, encode: Callable[[str], list[int]], formula: ToolFormula
) -> int:
    """Prompt tokens that ``tools`` (OpenAI ``tools`` shape) add, by the cookbook formula."""
    if not tools:
        return 0
    total = 0
    for index, tool in enumerate(tools):
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping):  # the legacy bare ``functions`` shape is accepted
            raise InvalidRequestError(
                f"tools[{index}] is not a tool definition: pass "
                '{"type": "function", "function": {"name": ..., "parameters": {...}}}.'
            )
        name = str(function.get("name", ""))
        description = _without_final_period(str(function.get("description") or ""))
        total += formula.func_init + len(encode(f"{name}:{description}"))
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if not isinstance(properties, Mapping) or not properties:
            continue
        total += formula.prop_init
        for key, schema in properties.items():
            total += formula.prop_key
            if not isinstance(schema, Mapping):
                total += len(encode(str(key)))
                continue
            enum = schema.get("enum")
            if isinstance(enum, Sequence) and not isinstance(enum, str) and enum:
                total += formula.enum_init
                for item in enum:
                    total += formula.enum_item + len(encode(str(item)))
            kind = schema.get("type", "")
            p_description = _without_final_period(str(schema.get("description") or ""))
            total += len(encode(f"{key}:{kind}:{p_description}"))
    return total + formula.func_end
