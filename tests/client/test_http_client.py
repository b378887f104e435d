"""Bringing your own httpx client or transport, and what happens when nothing listens."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

import guardedllm._transport
from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm._transport import ACCEPT_ENCODING, _strip_keys
from guardedllm._version import USER_AGENT
from guardedllm.errors import AllRoutesFailedError, ClientClosedError, ConnectError, GuardedLLMError
from guardedllm.providers.base import KEY_HEADERS
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from raw_server import RawServer, Received, Reply
from support import ENVIRON, config_at, config_text, make_call

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


# --------------------------------------------------------------------------- our own client
#
# When guardedllm makes the httpx client, it sends straight to the client's transport (see
# _transport.py). What reaches the wire must be what httpx.Client.send would have sent.

STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}'
    b"\n\n"
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}


def _recording_handler(seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if b'"stream":true' in request.read():  # a body still to read, as from a socket
            body = httpx.ByteStream(STREAM)
            return httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=ANSWER)

    return handler


def _sent_headers(registry: Registry, driver: str, *, own: bool) -> list[tuple[str, str]]:
    """The headers of one call, through our own client (``own``) or a user's plain httpx
    client with the same defaults."""
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_recording_handler(seen))
    defaults = {"user-agent": USER_AGENT, "accept-encoding": ACCEPT_ENCODING}

    def sync_call() -> None:
        http = None if own else httpx.Client(transport=transport, headers=defaults)
        kwargs: dict[str, Any] = {"http_client": http} if http else {"transport": transport}
        with Client(registry, environ=ENVIRON, **kwargs) as client:
            client.chat.completions.create(model="chat", messages=MESSAGES)

    async def async_call() -> None:
        http = None if own else httpx.AsyncClient(transport=transport, headers=defaults)
        kwargs: dict[str, Any] = {"http_client": http} if http else {"transport": transport}
        async with AsyncClient(registry, environ=ENVIRON, **kwargs) as client:
            await client.chat.completions.create(model="chat", messages=MESSAGES)

    if driver == "sync":
        sync_call()
    else:
        anyio.run(async_call, backend=driver)
    (request,) = seen
    return request.headers.multi_items()


@pytest.mark.parametrize("rows", ["httpx's rows", "public interface"])
def test_our_own_client_sends_what_httpx_client_send_would(
    registry: Registry, driver: str, rows: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rows == "public interface":  # as where httpx keeps its header rows otherwise
        monkeypatch.setattr(guardedllm._transport, "_rows_known", lambda: False)
    direct = _sent_headers(registry, driver, own=True)
    assert direct == _sent_headers(registry, driver, own=False)
    assert ("user-agent", USER_AGENT) in direct
    assert ("accept-encoding", ACCEPT_ENCODING) in direct


def test_a_streams_response_has_its_elapsed_time_once_closed(registry: Registry) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_recording_handler(seen))
    with Client(registry, transport=transport, environ=ENVIRON) as client:
        with client.chat.completions.create(model="chat", messages=MESSAGES, stream=True) as s:
            assert "".join(c.choices[0].delta.content or "" for c in s) == "hi"
        assert s.response.elapsed.total_seconds() >= 0
    assert seen[0].extensions["timeout"]["read"] == 5  # the attempt's timeout reached httpx


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_async_streams_response_has_its_elapsed_time_once_closed(
    registry: Registry, backend: str
) -> None:
    async def main() -> float:
        transport = httpx.MockTransport(_recording_handler([]))
        async with AsyncClient(registry, transport=transport, environ=ENVIRON) as client:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            async with stream:
                assert [c.choices[0].delta.content async for c in stream] == ["hi", None]
            return stream.response.elapsed.total_seconds()

    assert anyio.run(main, backend=backend) >= 0


def test_httpx_logs_each_request_as_it_would_through_its_client(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.MockTransport(_recording_handler([]))
    with (
        caplog.at_level(logging.INFO, logger="httpx"),
        Client(registry, transport=transport, environ=ENVIRON) as client,
    ):
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert [r.getMessage() for r in caplog.records if r.name == "httpx"] == [
        f"HTTP Request: POST {registry.providers['openai'].base_url}/chat/completions "
        '"HTTP/1.1 200 OK"'
    ]


@pytest.mark.parametrize("own", [True, False], ids=["our-client", "users-http-client"])
@pytest.mark.parametrize("action", ["call", "exact-estimate"])
def test_a_closed_client_sends_nothing(
    registry: Registry, driver: str, own: bool, action: str
) -> None:
    # Closed is closed whoever made the httpx client: our own (closed with ours) or the
    # caller's; an estimate sends nothing unless it asks the vendor for an exact count.
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_recording_handler(seen))
    model = "chat" if action == "call" else "claude-haiku"
    kwargs: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if action == "exact-estimate":
        kwargs["policy"] = Policy(exact_tokens=True)

    def sync_use() -> None:
        http = httpx.Client(transport=transport)
        given: dict[str, Any] = {"transport": transport} if own else {"http_client": http}
        client = Client(registry, environ=ENVIRON, **given)
        if own:
            client.close()
        else:
            http.close()
        send = client.chat.completions.create if action == "call" else client.estimate
        with pytest.raises(ClientClosedError, match="client has been closed") as caught:
            send(**kwargs)
        raise caught.value

    async def async_use() -> None:
        http = httpx.AsyncClient(transport=transport)
        given: dict[str, Any] = {"transport": transport} if own else {"http_client": http}
        aclient = AsyncClient(registry, environ=ENVIRON, **given)
        if own:
            await aclient.aclose()
        else:
            await http.aclose()
        send = aclient.chat.completions.create if action == "call" else aclient.estimate
        with pytest.raises(ClientClosedError, match="client has been closed") as caught:
            await send(**kwargs)
        raise caught.value

    # Still a RuntimeError, as httpx's own closed-client error is.
    with pytest.raises(RuntimeError) as caught:
        sync_use() if driver == "sync" else anyio.run(async_use, backend=driver)
    assert isinstance(caught.value, GuardedLLMError)
    assert ("http_client" in str(caught.value)) is not own  # says whose client was closed
    assert seen == []


def _stream_reply(encoding: str | None) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        body = STREAM
        if encoding == "gzip":
            headers["content-encoding"] = "gzip"
            body = gzip.compress(STREAM)
        # One SSE event per read, as a network delivers it.
        reads = [body[i : i + 40] for i in range(0, len(body), 40)]
        return httpx.Response(200, stream=_Reads(reads), headers=headers)

    return handler


class _Reads(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, reads: list[bytes]) -> None:
        self._reads = reads

    def __iter__(self) -> Iterator[bytes]:
        yield from self._reads

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for data in self._reads:
            yield data


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_streams_body_is_read_as_httpx_reads_it(
    registry: Registry, driver: str, encoding: str | None
) -> None:
    transport = httpx.MockTransport(_stream_reply(encoding))

    def sync_read() -> tuple[str, httpx.Response]:
        with Client(registry, transport=transport, environ=ENVIRON) as client:
            stream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream)
            return text, stream.response

    async def async_read() -> tuple[str, httpx.Response]:
        async with AsyncClient(registry, transport=transport, environ=ENVIRON) as client:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            return text, stream.response

    text, response = sync_read() if driver == "sync" else anyio.run(async_read, backend=driver)
    assert text == "hi"
    assert response.is_stream_consumed
    assert response.is_closed
    sent = len(gzip.compress(STREAM)) if encoding else len(STREAM)
    assert response.num_bytes_downloaded == sent


# --------------------------------------------------------------------------- redirects
#
# guardedllm's own client never follows a redirect; a caller's may (the openai and anthropic
# SDKs' clients do by default). httpx strips only Authorization when it follows one elsewhere.


def redirect_to(origin: str) -> Reply:
    """Answer every request with a 307 to the same path at ``origin``."""

    def reply(received: Received, conn: socket.socket, _: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 307 Temporary Redirect\r\n"
            + f"location: {origin}{received.path}\r\n".encode()
            + b"content-length: 0\r\nconnection: close\r\n\r\n"
        )

    return reply


@pytest.mark.parametrize(
    ("deployment", "key_header"),
    [
        ("gpt-4o-mini", "authorization"),
        ("azure-4o", "api-key"),
        ("claude-haiku", "x-api-key"),
        ("gemini-flash", "x-goog-api-key"),
    ],
)
def test_a_redirect_to_another_origin_takes_no_key_along(
    driver: str, fake_provider: FakeProvider, deployment: str, key_header: str
) -> None:
    # The provider's base_url answers 307 to another origin (the fake, on another port) and
    # the caller's client follows redirects: the call goes on there, without the key.
    with RawServer(redirect_to(fake_provider.base_url)) as first:
        registry = Registry.from_toml_text(config_at(first.url))

        def sync_call() -> object:
            with (
                httpx.Client(follow_redirects=True) as http,
                Client(registry, http_client=http, environ=ENVIRON) as client,
            ):
                return client.chat.completions.create(model=deployment, messages=MESSAGES)

        async def async_call() -> object:
            async with (
                httpx.AsyncClient(follow_redirects=True) as http,
                AsyncClient(registry, http_client=http, environ=ENVIRON) as client,
            ):
                return await client.chat.completions.create(model=deployment, messages=MESSAGES)

        result = sync_call() if driver == "sync" else anyio.run(async_call, backend=driver)
    assert isinstance(result, ChatCompletion)  # the redirect was followed
    (sent,) = first.requests
    assert key_header in sent.headers  # the key went where the config said
    (redirected,) = fake_provider.requests
    assert sorted(KEY_HEADERS & set(redirected.headers)) == []


@pytest.mark.parametrize(
    ("sent_to", "redirected_to", "keeps"),
    [
        ("http://api.example:8080/v1/chat", "http://api.example:8080/v2/chat", True),
        ("https://api.example/v1/chat", "https://api.example:443/v1/chat", True),
        ("http://api.example/v1/chat", "https://api.example/v1/chat", True),  # as httpx does
        ("https://api.example/v1/chat", "http://api.example/v1/chat", False),
        ("http://api.example:8080/v1/chat", "https://api.example/v1/chat", False),
        ("http://127.0.0.1:8080/v1/chat", "http://127.0.0.1:8081/v1/chat", False),
        ("https://api.example/v1/chat", "https://evil.example/v1/chat", False),
    ],
)
def test_which_redirects_keep_the_key(sent_to: str, redirected_to: str, keeps: bool) -> None:
    request = httpx.Request(
        "POST", redirected_to, headers={"x-api-key": "k", "api-key": "k", "x-team": "t"}
    )
    request.extensions["guardedllm.sent_to"] = httpx.URL(sent_to)
    _strip_keys(request)
    assert ("x-api-key" in request.headers, "api-key" in request.headers) == (keeps, keeps)
    assert request.headers["x-team"] == "t"


# --------------------------------------------------------------------------- content encodings


def test_a_provider_request_asks_only_for_what_is_decoded_against_the_cap(
    registry: Registry, driver: str
) -> None:
    # A client's default names br and zstd when their packages are installed; httpx would
    # inflate those a whole read at a time (see _decoding.py).
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(_recording_handler(seen))
    headers = {"accept-encoding": "br, zstd, gzip"}

    def sync_call() -> None:
        with (
            httpx.Client(transport=transport, headers=headers) as http,
            Client(registry, http_client=http, environ=ENVIRON) as client,
        ):
            client.chat.completions.create(model="chat", messages=MESSAGES)

    async def async_call() -> None:
        async with (
            httpx.AsyncClient(transport=transport, headers=headers) as http,
            AsyncClient(registry, http_client=http, environ=ENVIRON) as client,
        ):
            await client.chat.completions.create(model="chat", messages=MESSAGES)

    sync_call() if driver == "sync" else anyio.run(async_call, backend=driver)
    (request,) = seen
    assert request.headers["accept-encoding"] == ACCEPT_ENCODING == "gzip, deflate"


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, compress"])
def test_a_body_in_an_encoding_not_asked_for_is_refused(
    registry: Registry, driver: str, encoding: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = _Reads([b"\x1f\x8b not decoded"])  # a stream, as from a socket: httpx reads
        return httpx.Response(200, stream=body, headers={"content-encoding": encoding})

    call = make_call(
        driver, registry, transport=httpx.MockTransport(handler), policy=Policy(max_attempts=1)
    )
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model="chat", messages=MESSAGES)
    assert "does not ask for" in str(caught.value.last_error)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", "gzip, deflate"])
def test_an_encoded_answer_is_decoded(registry: Registry, driver: str, encoding: str) -> None:
    body = json.dumps(ANSWER).encode()
    for name in encoding.split(", "):
        body = _compress(body, name)
    header = encoding.replace("deflate-raw", "deflate")

    def handler(request: httpx.Request) -> httpx.Response:
        reads = [body[i : i + 7] for i in range(0, len(body), 7)]  # a few bytes per read
        return httpx.Response(200, stream=_Reads(reads), headers={"content-encoding": header})

    call = make_call(driver, registry, transport=httpx.MockTransport(handler))
    response = call(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "ok"


def _compress(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # raw deflate, as some servers send
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_encoded_stream_left_early_is_not_inflated_further(
    registry: Registry, backend: str
) -> None:
    # One read holds the first event, 256 KiB of comment lines, then a block no inflater
    # accepts. Leaving after the first chunk drains the closed body: what is left of the read
    # in hand must be skipped, not inflated (which would raise from the stream's exit).
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    plain = STREAM.split(b"\n\n")[0] + b"\n\n" + b": keep-alive\n" * (256 * 1024 // 13)
    body = compressor.compress(plain) + compressor.flush(zlib.Z_FULL_FLUSH) + b"\xff" * 16

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
        return httpx.Response(200, stream=_Reads([body]), headers=headers)

    async def main() -> str | None:
        transport = httpx.MockTransport(handler)
        async with AsyncClient(registry, transport=transport, environ=ENVIRON) as client:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            async with stream:
                async for chunk in stream:
                    return chunk.choices[0].delta.content
        return None

    assert anyio.run(main, backend=backend) == "hi"


def test_a_rotated_key_goes_out_from_the_next_call_on(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    environ = dict(ENVIRON)
    with Client(registry, environ=environ) as client:
        client.chat.completions.create(model="chat", messages=MESSAGES)
        environ["TEST_OPENAI_KEY"] = "sk-test-rotated-9876543210"
        client.chat.completions.create(model="chat", messages=MESSAGES)
        environ["TEST_OPENAI_KEY"] = "sk-test-rotated-9876543210\n"  # checked again, refused
        with pytest.raises(GuardedLLMError, match="whitespace or control"):
            client.chat.completions.create(model="chat", messages=MESSAGES)
    sent = [request.headers["authorization"] for request in fake_provider.requests]
    assert sent == [f"Bearer {ENVIRON['TEST_OPENAI_KEY']}", "Bearer sk-test-rotated-9876543210"]
