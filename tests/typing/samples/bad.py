"""Mistakes a type checker must catch. Each line marked ``# E`` must have an error, and no other
line may have one."""

from __future__ import annotations

from guardedllm import Client
from guardedllm.params import ChatCompletionMessageParam

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


def mistakes(client: Client) -> None:
    create = client.chat.completions.create
    create(model="m", messages=HI, temperature="hot")  # E
    create(model="m", messages=[{"role": "usr", "content": "Hi"}])  # E
    create(model="m", messages=HI, max_tokns=5)  # E
    create(model="m", messages=HI, tool_choice="sometimes")  # E
    create(model="m", messages=HI, response_format={"type": "yaml"})  # E
    create(model="m", messages="Hi")  # E
    create(model="m", messages=HI, stream_options={"include_usage": "yes"})  # E
    create(model="m", messages=HI, provider_options={"anthropic": 5})  # E
    response = create(model="m", messages=HI)
    for _chunk in response:  # E
        pass
    stream = create(model="m", messages=HI, stream=True)
    print(stream.choices)  # E
