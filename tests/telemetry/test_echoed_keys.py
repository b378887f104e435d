"""A key the vendor quotes back in a 2xx answer, through the real clients (Client, and
AsyncClient on asyncio and trio): an Azure key, 32 hex digits with no tell-tale prefix, echoed
in a 200 body holding an error, in a stream's error event (before and after its first chunk),
and in a 200 body that is not JSON. It must reach neither the error the caller gets (its text,
repr, attributes and the errors it was raised from), nor its attempts, nor any span."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from guardedllm import Registry
from guardedllm.errors import (
    AllRoutesFailedError,
    GuardedLLMError,
    ResponseFormatError,
    ServerError,
    StreamInterruptedError,
)
from guardedllm.testing import FakeProvider
from raw_server import APART, RawServer, streamed
from support import CONFIG, ENVIRON

from ._recording import Recorded
from ._sessions import Session, open_session
from .test_privacy import every_string

KEY = "3f2a9c4be81d47f0a6c5d9e2b7f18c03"  # an Azure key: 32 hex digits
AZURE_ID = "prod-gpt-4o"  # the azure-4o deployment's vendor model
MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]

# What a gateway in front of Azure might say, quoting the key it was sent.
ERROR = {"error": {"message": f"Access denied for key {KEY}.", "code": "invalid_api_key"}}
ERROR_EVENT = b"data: " + json.dumps(ERROR).encode() + b"\n\n"
NOT_JSON = f"<html><body>Access denied for key {KEY}</body></html>".encode()
HELLO = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n'
)


@pytest.fixture
def sessions(driver: str, recorded: Recorded) -> Iterator[Any]:
    """Opens sessions on ``registry`` with the test's driver, the Azure key set and telemetry
    recorded; closes them after the test."""
    opened: list[Session] = []

    def open_(registry: Registry) -> Session:
        tracer = recorded.tracer_provider.get_tracer("the-application")
        opened.append(
            open_session(
                driver,
                registry,
                tracer,
                environ={**ENVIRON, "TEST_AZURE_KEY": KEY},
                random=lambda: 0.0,
                telemetry=recorded.telemetry,
            )
        )
        return opened[-1]

    yield open_
    for each in opened:
        each.close()


def texts_of(error: BaseException) -> Iterator[str]:
    """Everything the caller can read off ``error``: its text, repr, attributes, attempts, and
    the same of every error it was raised from or during."""
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from (str(value) for value in vars(current).values())
        if isinstance(current, GuardedLLMError):
            yield from (str(attempt.to_dict()) for attempt in current.attempts)
        pending += (current.__cause__, current.__context__)


def assert_nowhere(error: BaseException, recorded: Recorded) -> None:
    texts = [*texts_of(error), *every_string(recorded)]
    assert any("Access denied" in text or "[redacted]" in text for text in texts)  # it was seen
    assert [text for text in texts if KEY[:8] in text] == []


@pytest.mark.parametrize(
    ("body", "stream", "cause"),
    [
        (json.dumps(ERROR).encode(), False, ServerError),
        (ERROR_EVENT, True, ServerError),
        (NOT_JSON, False, ResponseFormatError),
    ],
    ids=["error-body", "error-event-first", "not-json"],
)
def test_a_key_echoed_in_a_2xx_answer_is_masked_everywhere(
    sessions: Any,
    registry: Registry,
    recorded: Recorded,
    fake_provider: FakeProvider,
    body: bytes,
    stream: bool,
    cause: type[GuardedLLMError],
) -> None:
    fake_provider.script(model=AZURE_ID, body=body)
    session = sessions(registry)
    call = session.stream if stream else session.create
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model="azure-4o", messages=MESSAGES)
    assert isinstance(caught.value.last_error, cause)
    assert len(caught.value.attempts) == 2  # retried, as any such answer
    assert_nowhere(caught.value, recorded)


def test_a_key_echoed_in_an_error_event_mid_stream_is_masked_everywhere(
    sessions: Any, recorded: Recorded
) -> None:
    def pieces() -> Iterator[bytes]:
        yield HELLO
        yield APART
        yield ERROR_EVENT

    with RawServer(streamed(pieces)) as server:
        url = server.url
        text = CONFIG.format(openai=url + "/v1", azure=url, anthropic=url, gemini=url)
        session = sessions(Registry.from_toml_text(text, source="raw-server"))
        with pytest.raises(StreamInterruptedError) as caught:
            session.stream(model="azure-4o", messages=MESSAGES)
    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.partial_content == "Hello"
    assert_nowhere(caught.value, recorded)
