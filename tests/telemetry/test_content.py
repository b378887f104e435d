"""The captured messages' content (``telemetry._content``), when content capture is on."""

from __future__ import annotations

import json

from guardedllm.telemetry._content import input_messages

DEEP = "[" * 100_000 + "]" * 100_000  # deeper than json.loads goes: RecursionError


def test_tool_call_arguments_too_deep_to_parse_are_kept_as_their_text() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": DEEP}}],
    }
    recorded = json.loads(input_messages([message]))
    assert recorded[0]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "f", "arguments": DEEP}
    ]


def test_tool_call_arguments_are_recorded_as_the_value_they_spell() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"city": "Oslo"}'}}],
    }
    recorded = json.loads(input_messages([message]))
    assert recorded[0]["parts"][0]["arguments"] == {"city": "Oslo"}
