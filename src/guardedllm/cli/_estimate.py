"""``guardedllm estimate CONFIG --model NAME --messages FILE.json``: what a request would cost."""

from __future__ import annotations

import json
from typing import Any

from guardedllm.client import Client
from guardedllm.errors import InvalidRequestError
from guardedllm.registry import Registry

__all__ = ["run_estimate"]


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"cannot read {what} from {path}: {exc}") from None


def run_estimate(
    path: str,
    *,
    model: str,
    messages_path: str,
    tools_path: str | None,
    max_tokens: int | None,
    env: str | None,
) -> int:
    registry = Registry.from_toml(path, env=env)
    messages = _load_json(messages_path, "messages")
    tools = _load_json(tools_path, "tools") if tools_path else None
    with Client(registry) as client:
        est = client.estimate(model=model, messages=messages, tools=tools, max_tokens=max_tokens)
    print(f"deployment         {est.deployment}")
    print(f"input_tokens       {est.input_tokens}{'' if est.exact else ' (estimate)'}")
    print(f"max_output_tokens  {est.max_output_tokens}")
    print(f"cost_usd_max       {est.cost_usd_max:.6f}")
    print(f"cost_usd_expected  {est.cost_usd_expected:.6f}")
    print(f"fits_context       {str(est.fits_context).lower()}")
    print(f"fits_output        {str(est.fits_output).lower()}")
    print(f"exact              {str(est.exact).lower()}")
    for note in est.notes:
        print(f"note               {note}")
    return 0
