"""A registry with a spread of deployments, prices and capabilities for routing tests."""

from __future__ import annotations

from typing import Any

from guardedllm.registry import Registry


def _model(provider: str, usd_in: float, usd_out: float, window: int, caps: list[str]) -> Any:
    return {
        "provider": provider,
        "model": "vendor-id",
        "tokenizer": "o200k_base",
        "context_window": window,
        "max_output_tokens": min(window, 4096),
        "input_usd_per_mtok": usd_in,
        "output_usd_per_mtok": usd_out,
        "capabilities": caps,
    }


def config() -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"kind": "openai"},
            "anthropic": {"kind": "anthropic"},
            "gemini": {"kind": "gemini"},
        },
        "models": {
            "mini": _model("openai", 0.15, 0.6, 128_000, ["tools", "vision", "json"]),
            "big": _model("openai", 2.5, 10.0, 128_000, ["tools", "vision", "json"]),
            "haiku": _model("anthropic", 0.8, 4.0, 200_000, ["tools"]),
            "flash": _model("gemini", 0.1, 0.4, 1_000_000, ["vision"]),
            "tiny": _model("openai", 0.01, 0.02, 5_000, []),
        },
        "aliases": {"chat": "mini"},
        "routes": {"support": {"fallback": ["mini", "haiku", "flash"]}},
    }


def registry() -> Registry:
    return Registry.from_dict(config())
