"""Vendor wire formats: pure translation between OpenAI-shaped values and each vendor's API."""

from __future__ import annotations

from guardedllm.errors import ArgumentError
from guardedllm.providers.base import StreamDecoder, Target, WireFormat

__all__ = ["WIRE_KINDS", "StreamDecoder", "Target", "WireFormat", "wire_format_for"]

# Provider kind -> the wire format that speaks it. Imported on first use, so a process that
# only talks to one vendor never loads the others.
WIRE_KINDS = frozenset({"openai", "openai-compatible", "azure-openai", "anthropic", "gemini"})


def wire_format_for(kind: str) -> WireFormat:
    """A wire format for provider ``kind`` (one of ``WIRE_KINDS``)."""
    if kind == "openai":
        from guardedllm.providers.openai import OpenAIWire

        return OpenAIWire(max_tokens_field="max_completion_tokens")
    if kind == "openai-compatible":
        from guardedllm.providers.openai import OpenAIWire

        return OpenAIWire(max_tokens_field="max_tokens")
    if kind == "azure-openai":
        from guardedllm.providers.openai import AzureOpenAIWire

        return AzureOpenAIWire()
    if kind == "anthropic":
        from guardedllm.providers.anthropic import AnthropicWire

        return AnthropicWire()
    if kind == "gemini":
        from guardedllm.providers.gemini import GeminiWire

        return GeminiWire()
    raise ArgumentError(f"unknown provider kind {kind!r}; expected one of {sorted(WIRE_KINDS)}")
