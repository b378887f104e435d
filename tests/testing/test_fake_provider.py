"""FakeProvider's lifecycle, journal, model catalog, concurrency and pytest plugin."""

from __future__ import annotations

import gc
import socket
import threading
import time
import warnings

import anyio
import httpx
import openai
import pytest

import guardedllm.testing
from guardedllm.testing import FakeProvider

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_public_names() -> None:
    assert set(guardedllm.testing.__all__) == {
        "Behaviour",
        "Endpoint",
        "FakeProvider",
        "RecordedRequest",
        "ScriptRule",
        "ScriptedToolCall",
        "ScriptedUsage",
        "Vendor",
    }
    for name in guardedllm.testing.__all__:
        assert hasattr(guardedllm.testing, name)


def test_plugin_fixture_is_discovered(
    pytestconfig: pytest.Config, fake_provider: FakeProvider
) -> None:
    assert pytestconfig.pluginmanager.has_plugin("guardedllm")
    assert fake_provider.running
    assert fake_provider.base_url.startswith("http://127.0.0.1:")


def test_start_and_stop_are_idempotent_and_restartable() -> None:
    fake = FakeProvider()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.base_url
    fake.start()
    first = fake.base_url
    assert fake.start().base_url == first
    assert fake.openai_base_url == first + "/v1"
    assert fake.anthropic_base_url == fake.gemini_base_url == fake.azure_base_url == first
    fake.stop()
    fake.stop()
    assert not fake.running
    with pytest.raises(httpx.ConnectError):
        httpx.post(first + "/v1/chat/completions", json=CHAT)
    with fake:
        assert httpx.post(fake.openai_base_url + "/chat/completions", json=CHAT).is_success
    assert "stopped" in repr(fake)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_fixed_port_is_served_and_kept_across_restarts() -> None:
    # A static config file (base_url = "http://127.0.0.1:PORT/v1") can point at it.
    port = _free_port()
    fake = FakeProvider(port=port)
    with fake:
        assert fake.port == port
        assert fake.base_url == f"http://127.0.0.1:{port}"
        assert httpx.post(fake.openai_base_url + "/chat/completions", json=CHAT).is_success
    with fake:  # started again: the same port
        assert fake.port == port
        with pytest.raises(RuntimeError, match=f"port {port}"), FakeProvider(port=port):
            pass  # the port is taken: a clear error, not a server on another port


@pytest.mark.parametrize("port", [-1, 65536, "8080", True])
def test_a_port_that_is_no_port_number_is_refused(port: object) -> None:
    with pytest.raises(ValueError, match="port must be"):
        FakeProvider(port=port)  # type: ignore[arg-type]


def test_stop_leaves_no_thread_socket_or_warning() -> None:
    before = threading.active_count()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            with FakeProvider() as fake, httpx.Client() as http:
                fake.script(cut_after_chunks=1, times=1)
                with (
                    pytest.raises(httpx.RemoteProtocolError),
                    http.stream(
                        "POST",
                        fake.openai_base_url + "/chat/completions",
                        json={**CHAT, "stream": True},
                    ) as resp,
                ):
                    resp.read()
                assert http.post(fake.openai_base_url + "/chat/completions", json=CHAT).is_success
        gc.collect()
    assert threading.active_count() == before
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.anyio
async def test_async_context_manager_with_async_clients(anyio_backend: str) -> None:
    async with FakeProvider() as fake, httpx.AsyncClient(base_url=fake.openai_base_url) as http:
        fake.script(latency=0.2)
        started = anyio.current_time()
        results: list[int] = []

        async def one() -> None:
            results.append((await http.post("/chat/completions", json=CHAT)).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(one)
        assert results == [200] * 10
        assert anyio.current_time() - started < 1.5  # concurrent, not 10 x 0.2 s
    assert not fake.running


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the openai SDK's async client
async def test_async_openai_sdk_stream(anyio_backend: str) -> None:
    async with (
        FakeProvider() as fake,
        openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0) as client,
    ):
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Fake reply from m: hi"


def test_64_concurrent_connections_are_served_together() -> None:
    with FakeProvider() as fake:
        fake.script(latency=0.3, chunk_delay=0.01)

        async def main() -> list[int]:
            limits = httpx.Limits(max_connections=80)
            async with httpx.AsyncClient(base_url=fake.openai_base_url, limits=limits) as http:
                statuses: list[int] = []

                async def one(i: int) -> None:
                    body = {**CHAT, "stream": i % 2 == 0}
                    async with http.stream("POST", "/chat/completions", json=body) as resp:
                        await resp.aread()
                        statuses.append(resp.status_code)

                async with anyio.create_task_group() as group:
                    for i in range(64):
                        group.start_soon(one, i)
                return statuses

        started = time.monotonic()
        statuses = anyio.run(main)
        elapsed = time.monotonic() - started
    assert statuses == [200] * 64
    assert elapsed < 3  # 64 x 0.3 s sequentially would be 19 s
    assert len(fake.requests) == 64


def test_journal_filters_waits_and_resets() -> None:
    with FakeProvider() as fake:
        httpx.post(fake.openai_base_url + "/chat/completions", json=CHAT)
        httpx.post(fake.openai_base_url + "/chat/completions", json={**CHAT, "model": "n"})
        httpx.post(
            fake.anthropic_base_url + "/v1/messages",
            json={**CHAT, "max_tokens": 5},
            headers={"anthropic-version": "2023-06-01", "x-api-key": "secret-key"},
        )
        assert [r.model for r in fake.requests] == ["m", "n", "m"]
        assert len(fake.requests_for(model="m")) == 2
        assert len(fake.requests_for(vendor="anthropic")) == 1
        assert len(fake.requests_for(model="m", vendor="openai")) == 1
        assert len(fake.wait_for_requests(3, timeout=1)) == 3
        with pytest.raises(TimeoutError, match="3 of the 4"):
            fake.wait_for_requests(4, timeout=0.05)
        first, _, last = fake.requests
        assert first.received_at <= last.received_at
        assert "secret-key" not in repr(last)
        assert last.headers["x-api-key"] == "secret-key"
        rule = fake.script(status=500)
        fake.reset()
        assert fake.requests == []
        assert not rule.active
        assert httpx.post(fake.openai_base_url + "/chat/completions", json=CHAT).is_success


def test_models_can_be_added_and_removed() -> None:
    with FakeProvider(models=["a"]) as fake:
        url = fake.openai_base_url + "/chat/completions"

        def status(model: str) -> int:
            return httpx.post(url, json={**CHAT, "model": model}).status_code

        assert (status("a"), status("b")) == (200, 404)
        fake.add_model("b")
        fake.remove_model("a")
        assert (status("a"), status("b")) == (404, 200)
        assert fake.models == frozenset({"b"})
    with FakeProvider() as open_fake:
        assert open_fake.models is None
        open_fake.remove_model("gone")
        url = open_fake.openai_base_url + "/chat/completions"
        assert httpx.post(url, json={**CHAT, "model": "gone"}).status_code == 404
        assert httpx.post(url, json={**CHAT, "model": "other"}).status_code == 200


def test_a_bare_string_is_not_a_model_collection() -> None:
    with pytest.raises(TypeError, match="collection"):
        FakeProvider(models="gpt-4o")


def test_script_handle_counts_hits() -> None:
    with FakeProvider() as fake:
        rule = fake.script(model="m", times=2, status=500)
        url = fake.openai_base_url + "/chat/completions"
        statuses = [httpx.post(url, json=CHAT).status_code for _ in range(3)]
        assert statuses == [500, 500, 200]
        assert rule.hits == 2
        assert rule.remaining == 0
