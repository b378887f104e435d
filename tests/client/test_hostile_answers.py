"""Answers a hostile or broken upstream sends, through every driver: usage counts no vendor
could bill, streams that never stop or whose events never end, JSON nested too deep to parse.
Each is either read safely (an answer whose usage is nonsense still answers, and its budget
keeps no hold) or a typed error that is retried or not like any malformed answer; never a
builtin exception escaping the call, never memory that grows as long as the vendor sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guardedllm import Client, Registry, defaults
from guardedllm.errors import (
    AllRoutesFailedError,
    BadRequestError,
    GuardedLLMError,
    ResponseFormatError,
    ServerError,
    StreamInterruptedError,
)
from guardedllm.guards import SpendBudget
from guardedllm.guards.spend import MAX_BUDGET_USD
from guardedllm.providers._sse import DEFAULT_MAX_BUFFER
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from raw_server import APART, RawServer, streamed
from session import open_session
from support import CONFIG, ENVIRON, Call, Streamed, config_text, make_call
from wire_bodies import answer_and_stream

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]

# Each vendor's deployment in the test config, with the model id FakeProvider matches it by
# and its provider kind.
KINDS = {
    "gpt-4o-mini": "openai",
    "azure-4o": "azure-openai",
    "claude-haiku": "anthropic",
    "gemini-flash": "gemini",
}
VENDOR_IDS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "azure-4o": "prod-gpt-4o",
    "claude-haiku": "claude-3-5-haiku-20241022",
    "gemini-flash": "gemini-2.0-flash",
}

# Far deeper than the interpreter's recursion limit: json.loads raises RecursionError on it.
DEEP = b"[" * 100_000 + b"]" * 100_000


def raw_registry(server: RawServer) -> Registry:
    """The test config with every provider pointed at ``server``."""
    url = server.url
    text = CONFIG.format(openai=url + "/v1", azure=url, anthropic=url, gemini=url)
    return Registry.from_toml_text(text, source="raw-server")


def stream_error(error: BaseException | None) -> GuardedLLMError:
    """The error behind a failed streamed call: what broke a committed stream, or the last
    attempt's error for one that failed before its first chunk."""
    if isinstance(error, StreamInterruptedError):
        assert isinstance(error.__cause__, GuardedLLMError)
        return error.__cause__
    assert isinstance(error, AllRoutesFailedError)
    assert isinstance(error.last_error, GuardedLLMError)
    return error.last_error


def openai_event(text: str) -> bytes:
    return (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"' + text.encode() + b'"},'
        b'"finish_reason":null}]}\n\n'
    )


# --------------------------------------------------------------------------- usage


NONSENSE_COUNTS = [(-1_000_000, 5), (12, 10**18), (12, 10**400)]


@pytest.mark.parametrize("deployment", sorted(VENDOR_IDS))
@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize(
    ("prompt", "completion"), NONSENSE_COUNTS, ids=["negative", "huge", "10**400"]
)
def test_usage_no_vendor_could_bill_keeps_the_answer_and_settles_the_worst_case(
    driver: str,
    registry: Registry,
    fake_provider: FakeProvider,
    deployment: str,
    stream: bool,
    prompt: int,
    completion: int,
) -> None:
    answer, streamed = answer_and_stream(KINDS[deployment], prompt, completion)
    fake_provider.script(model=VENDOR_IDS[deployment], body=streamed if stream else answer)
    budget = SpendBudget(scope="global", window="day", limit_usd=1.0)
    with Client(registry, environ=ENVIRON) as client:
        worst = client.estimate(model=deployment, messages=MESSAGES, max_tokens=50).cost_usd_max

    with open_session(driver, registry, budgets=[budget]) as session:
        result = session.create(model=deployment, messages=MESSAGES, max_tokens=50, stream=stream)
        (status,) = session.spend()

    if stream:
        assert isinstance(result, Streamed)
        assert result.completed
        assert result.content == "hi"
    else:
        assert isinstance(result, ChatCompletion)
        assert result.choices[0].message.content == "hi"
        assert result.usage is None
    assert result.guard is not None
    assert result.guard.cost_usd is None  # unknown: no count to price
    assert status.reserved_usd == 0  # nothing left held
    assert status.spent_usd == pytest.approx(worst, abs=1e-9)  # the worst case stays spent


def test_a_cost_past_what_the_ledger_counts_still_settles(
    driver: str, fake_provider: FakeProvider
) -> None:
    # A sane count at a price no vendor charges costs more than the spend ledger counts
    # exactly; the reservation is still settled (to the most the ledger counts), not left held.
    text = config_text(fake_provider).replace(
        "output_usd_per_mtok = 0.60", "output_usd_per_mtok = 100000.0"
    )
    registry = Registry.from_toml_text(text, source="test-config")
    answer, _ = answer_and_stream("openai", 12, 1_000_000_000)
    fake_provider.script(model=VENDOR_IDS["gpt-4o-mini"], body=answer)
    budget = SpendBudget(scope="global", window="day", limit_usd=1.0)
    with open_session(driver, registry, budgets=[budget]) as session:
        result = session.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        (status,) = session.spend()
    assert isinstance(result, ChatCompletion)
    assert result.guard is not None
    assert result.guard.cost_usd == pytest.approx(1e8)
    assert status.reserved_usd == 0
    assert status.spent_usd == MAX_BUDGET_USD


# --------------------------------------------------------------------------- endless streams

# Bounded answers from a server that would otherwise go on: far past any stream's bounds, then
# a proper end, so a client without bounds reads all of it and reports a success.
FLOOD_EVENTS = 100_000
PER_WRITE = 500


def endless(event: bytes, *, count: int = FLOOD_EVENTS) -> Iterator[bytes]:
    """A first chunk in a read of its own, then ``count`` copies of ``event`` and [DONE]."""
    yield openai_event("Hello")
    yield APART
    for start in range(0, count, PER_WRITE):
        yield event * min(PER_WRITE, count - start)
    yield b"data: [DONE]\n\n"


def test_an_endless_stream_of_valid_chunks_is_cut_past_its_max_tokens(driver: str) -> None:
    with RawServer(streamed(lambda: endless(openai_event("more")))) as server:
        call = make_call(driver, raw_registry(server))
        with pytest.raises(StreamInterruptedError) as caught:
            call(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, stream=True)
    cause = stream_error(caught.value)
    assert isinstance(cause, ResponseFormatError)
    bound = defaults.STREAM_CHUNKS_PER_TOKEN * 20 + defaults.STREAM_CHUNK_SLACK
    assert f"past {bound} chunks" in str(cause)
    # What the tracker kept is bounded by the stream's chunk bound, not by what was sent.
    assert len(caught.value.received) <= bound
    assert len(server.requests) == 1  # committed: never retried


def test_a_stream_with_no_max_tokens_is_bounded_by_its_bytes(
    driver: str,
) -> None:
    # llama's max_output_tokens (2048) at STREAM_BYTES_PER_TOKEN is 2 MiB, over the client's
    # max_response_bytes (1 MB here): chunks of 10 kB each reach it long before the chunk bound.
    big = openai_event("x" * 10_000)
    bound = defaults.STREAM_BYTES_PER_TOKEN * 2048
    with RawServer(streamed(lambda: endless(big, count=2 * bound // len(big)))) as server:
        call = make_call(driver, raw_registry(server), max_response_bytes=1_000_000)
        with pytest.raises(StreamInterruptedError) as caught:
            call(model="llama", messages=MESSAGES, stream=True)
    cause = stream_error(caught.value)
    assert isinstance(cause, ResponseFormatError)
    assert f"past {bound} bytes" in str(cause)
    assert len(caught.value.received) * len(big) <= bound


def test_a_stream_that_sends_nothing_but_pings_is_cut_by_its_bytes_and_retried(
    driver: str,
) -> None:
    ping = b": ping " + b"." * 1000 + b"\n\n"

    def pings() -> Iterator[bytes]:
        for _ in range(4_000_000 // (len(ping) * PER_WRITE)):
            yield ping * PER_WRITE
        yield b"data: [DONE]\n\n"

    with RawServer(streamed(pings)) as server:
        call = make_call(driver, raw_registry(server), max_response_bytes=1_000_000)
        with pytest.raises(AllRoutesFailedError) as caught:
            call(model="llama", messages=MESSAGES, max_tokens=20, stream=True)
    cause = stream_error(caught.value)
    assert isinstance(cause, ResponseFormatError)
    assert "past 1000000 bytes" in str(cause)
    assert [a.error_type for a in caught.value.attempts] == ["ResponseFormatError"] * 2


def test_an_event_whose_data_lines_never_end_is_cut_at_the_event_bound(driver: str) -> None:
    line = b"data: " + b"x" * 10_000 + b"\n"  # no blank line ever dispatches the event

    def pieces() -> Iterator[bytes]:
        yield openai_event("Hello")
        yield APART
        for _ in range((DEFAULT_MAX_BUFFER + 2_000_000) // (len(line) * 50)):
            yield line * 50

    with RawServer(streamed(pieces)) as server:
        call = make_call(driver, raw_registry(server))
        with pytest.raises(StreamInterruptedError) as caught:
            call(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    cause = stream_error(caught.value)
    assert isinstance(cause, ResponseFormatError)
    assert f"event exceeded {DEFAULT_MAX_BUFFER} bytes" in str(cause)


# --------------------------------------------------------------------------- JSON nested too deep


@pytest.mark.parametrize("deployment", sorted(VENDOR_IDS))
@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_an_answer_nested_too_deep_is_malformed_and_retried(
    call: Call, fake_provider: FakeProvider, deployment: str, stream: bool
) -> None:
    body = b"data: " + DEEP + b"\n\n" if stream else DEEP
    fake_provider.script(model=VENDOR_IDS[deployment], body=body)
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model=deployment, messages=MESSAGES, stream=stream)
    assert isinstance(caught.value.last_error, ResponseFormatError)
    assert [a.error_type for a in caught.value.attempts] == ["ResponseFormatError"] * 2


@pytest.mark.parametrize("deployment", sorted(VENDOR_IDS))
def test_an_error_body_nested_too_deep_keeps_its_status_class(
    call: Call, fake_provider: FakeProvider, deployment: str
) -> None:
    fake_provider.script(model=VENDOR_IDS[deployment], status=503, body=DEEP, times=2)
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model=deployment, messages=MESSAGES)
    assert isinstance(caught.value.last_error, ServerError)
    assert [(a.status, a.error_type) for a in caught.value.attempts] == [
        (503, "ServerError")
    ] * 2  # retried, as any 503
    fake_provider.script(model=VENDOR_IDS[deployment], status=400, body=DEEP)
    with pytest.raises(BadRequestError):
        call(model=deployment, messages=MESSAGES)


def test_a_stream_event_nested_too_deep_after_the_first_chunk_interrupts(driver: str) -> None:
    def pieces() -> Iterator[bytes]:
        yield openai_event("Hello")
        yield APART
        yield b"data: " + DEEP + b"\n\n"
        yield b"data: [DONE]\n\n"

    with RawServer(streamed(pieces)) as server:
        call = make_call(driver, raw_registry(server))
        with pytest.raises(StreamInterruptedError) as caught:
            call(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(caught.value.__cause__, ResponseFormatError)
    assert caught.value.partial_content == "Hello"
    assert len(server.requests) == 1  # committed: never retried
