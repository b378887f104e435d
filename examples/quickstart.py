"""Quickstart: one guarded call, sync and async, against a local FakeProvider.

Run it with ``python examples/quickstart.py``; point the config at real providers (and set
their API key variables) to call real models the same way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import guardedllm
from guardedllm.testing import FakeProvider

CONFIG = Path(__file__).with_name("guardedllm.toml")


def main() -> None:
    with FakeProvider() as fake:
        # The example config names the real vendors; here both point at the fake instead.
        text = CONFIG.read_text().replace("https://api.openai.com/v1", fake.openai_base_url)
        text = text.replace("https://api.anthropic.com", fake.anthropic_base_url)
        registry = guardedllm.Registry.from_toml_text(text, env="prod")
        environ = {"OPENAI_API_KEY": "sk-example", "ANTHROPIC_API_KEY": "sk-ant-example"}

        with guardedllm.Client(registry, environ=environ) as client:
            messages = [{"role": "user", "content": "Hello!"}]
            estimate = client.estimate(model="chat", messages=messages, max_tokens=100)
            print(
                f"estimate: {estimate.input_tokens} tokens in, at most ${estimate.cost_usd_max:.6f}"
            )

            response = client.chat.completions.create(
                model="chat", messages=messages, max_tokens=100
            )
            print(response.choices[0].message.content)
            print(f"served by {response.guard.deployment} for ${response.guard.cost_usd:.6f}")

            for chunk in client.chat.completions.create(
                model="support-chat", messages=messages, stream=True
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    print(chunk.choices[0].delta.content, end="")
            print()

        async def use_async() -> None:
            async with guardedllm.AsyncClient(registry, environ=environ) as aclient:
                response = await aclient.chat.completions.create(model="chat", messages=messages)
                print("async:", response.choices[0].message.content)

        asyncio.run(use_async())


if __name__ == "__main__":
    main()
