"""Bringing your own httpx client or transport, and what happens when nothing listens."""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.errors import AllRoutesFailedError, ConnectError
from guardedllm.testing import FakeProvider
from support import ENVIRON, config_text, make_call

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_users_httpx_client_carries_the_calls_and_stays_open(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    seen: list[str] = []
    http = httpx.Client(
        headers={"x-team": "search"},
        event_hooks={"request": [lambda request: seen.append(str(request.url))]},
    )
    with Client(registry, http_client=http, environ=ENVIRON) as client:
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert seen == [fake_provider.openai_base_url + "/chat/completions"]
    assert fake_provider.requests[0].headers["x-team"] == "search"
    assert not http.is_closed  # the client is the caller's to close
    http.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_users_async_httpx_client_carries_the_calls_and_stays_open(
    registry: Registry, fake_provider: FakeProvider, backend: str
) -> None:
    async def main() -> bool:
        http = httpx.AsyncClient(headers={"x-team": "search"})
        async with AsyncClient(registry, http_client=http, environ=ENVIRON) as client:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        still_open = not http.is_closed
        await http.aclose()
        return still_open

    assert anyio.run(main, backend=backend)
    assert fake_provider.requests[0].headers["x-team"] == "search"


def test_a_mock_transport_is_enough_for_unit_tests(registry: Registry) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "mocked"},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    with Client(registry, transport=httpx.MockTransport(handler), environ=ENVIRON) as client:
        response = client.chat.completions.create(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "mocked"
    assert response.usage is None
    assert response.guard is not None
    assert response.guard.cost_usd is None  # no usage reported, so no cost is invented


def test_http_client_and_transport_together_are_refused(registry: Registry) -> None:
    with pytest.raises(TypeError, match="not both"):
        Client(registry, http_client=httpx.Client(), transport=httpx.MockTransport(print))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_is_a_connect_error_after_retries(driver: str) -> None:
    with FakeProvider() as fake:
        text = config_text(fake).replace(f":{fake.port}", f":{closed_port()}")
    registry = Registry.from_toml_text(text)
    call = make_call(driver, registry, policy=Policy(max_attempts=2))
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    assert [a.error_type for a in caught.value.attempts] == ["ConnectError", "ConnectError"]
    assert isinstance(caught.value.last_error, ConnectError)
    assert "could not connect" in str(caught.value.last_error)
