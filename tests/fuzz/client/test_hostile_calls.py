"""Whole calls against an upstream that answers anything, through Client and AsyncClient
(asyncio and trio), with a spend budget, rpm/tpm limits and a breaker on.

``HostileServer`` plays what hypothesis draws from ``_answers``: a vendor's body, error or
stream, broken in its JSON, its events, its bytes, its HTTP framing or its connection. The
caller reads a stream to its end, closes it after the first chunk, drops it without closing
(sync), or cancels the whole call (async). After every call, whatever happened:

- only a ``GuardedLLMError`` reached the caller (anything else fails the test as it is);
- no spend reservation, breaker probe slot or rate-limit token is still held (``Rig``);
- no API key appears in the error, its attempts or its causes;
- the call took no longer than its attempts' timeouts allow;
- a wait an error reports is a finite number of seconds.

Deterministic tests follow. A table runs each answer a hostile upstream is known to send
(absurd usage counts, a key echoed in a 200, JSON nested 100,000 deep) with the same checks,
so each stays covered whatever the fuzz draws, and so does a call cancelled mid-attempt. The
others each hold a property a random answer rarely reaches: an answer trickled byte by byte
against the call's deadline, a hostile Retry-After against the deployment's availability an
hour later, a redirect to another origin against the keys, and a call on a closed client.

Each test's examples and timings are bounded (see ``_profiles`` for the long run).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz._answers import hostile_answers
from fuzz._hostile import Answer, HostileServer, respond, split_bytes
from fuzz._profiles import fuzz
from fuzz._rig import MAX_ATTEMPTS, TIMEOUT_S, Called, How, Rig, errors_in, open_rig
from fuzz._wire import DEPLOYMENTS, KEYS, VENDORS, Vendor
from guardedllm import Policy
from guardedllm.errors import GuardedLLMError, ProviderError
from guardedllm.types import ChatCompletion

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
MAX_TOKENS = 16
# What a call may take beyond its attempts' timeouts: the client's own work and a loaded
# machine's scheduling, never another attempt.
SLACK_S = 1.0
CANCEL_AFTER_S = (0.0, 0.005, 0.05, 0.2)
HOWS = {"sync": ("read", "read", "close_early", "abandon"), "async": ("read", "close_early")}

OK_BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"fuzz-model-openai",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}'
)


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture
def rig(driver: str, server: HostileServer) -> Iterator[Rig]:
    with open_rig(driver, server) as opened:
        yield opened


def ask(vendor: Vendor = "openai", **kwargs: Any) -> dict[str, Any]:
    return {
        "model": DEPLOYMENTS[vendor],
        "messages": MESSAGES,
        "max_tokens": MAX_TOKENS,
        **kwargs,
    }


def hostile_call(
    rig: Rig,
    answer: Answer,
    *,
    vendor: Vendor = "openai",
    stream: bool = False,
    how: How = "read",
    cancel_after_s: float = 0.0,
    half_open: bool = False,
) -> Called:
    """One call of a fresh client to ``vendor``'s deployment, answered by ``answer``, with
    every property of the module docstring checked after it."""
    rig.server.answer = answer
    deployment = DEPLOYMENTS[vendor]
    with rig.fresh(half_open=half_open) as client:
        before = rig.tokens_left(deployment)
        called = rig.call(
            client, how=how, cancel_after_s=cancel_after_s, **ask(vendor, stream=stream)
        )
        rig.check_guards(client, deployment, before, called)

    if isinstance(called.result, BaseException):
        for text in errors_in(called.result):
            for key in KEYS.values():
                assert key not in text, f"an API key is in the error: {text[:300]!r}"
    assert called.elapsed_s <= MAX_ATTEMPTS * TIMEOUT_S + SLACK_S, (
        f"the call took {called.elapsed_s:.2f} s; its attempts' timeouts allow "
        f"{MAX_ATTEMPTS * TIMEOUT_S:.2f} s"
    )
    if isinstance(called.result, ProviderError) and called.result.retry_after is not None:
        wait = called.result.retry_after
        assert math.isfinite(wait), f"the error asks to wait {wait} s"
        assert wait >= 0, f"the error asks to wait {wait} s"
    return called


# --------------------------------------------------------------------------- the fuzz


@fuzz(60, shrink=False)
@given(data=st.data())
def test_only_guardedllm_errors_escape_and_the_guards_are_left_clean(
    rig: Rig, data: st.DataObject
) -> None:
    vendor = data.draw(st.sampled_from(VENDORS), label="vendor")
    stream = data.draw(st.booleans(), label="stream")
    answer = data.draw(hostile_answers(vendor, stream=stream), label="answer")
    hows = HOWS["sync" if rig.driver == "sync" else "async"]
    how = data.draw(st.sampled_from((*hows, "cancel") if rig.driver != "sync" else hows))
    cancel_after = data.draw(st.sampled_from(CANCEL_AFTER_S)) if how == "cancel" else 0.0
    half_open = data.draw(st.booleans(), label="half_open")
    hostile_call(
        rig,
        answer,
        vendor=vendor,
        stream=stream,
        how=how,
        cancel_after_s=cancel_after,
        half_open=half_open,
    )


# --------------------------------------------------------------------------- known answers
#
# Answers a hostile upstream is known to send, each through every driver with the same
# properties as the fuzz, so that each stays covered whatever the fuzz draws.


def _completion(usage: bytes) -> bytes:
    return OK_BODY.replace(b'"prompt_tokens":5,"completion_tokens":1', usage)


def _sse(*events: bytes) -> Answer:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    return Answer(parts=(head, *events), label="stream")


CHUNK = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
KEY = KEYS["openai"].encode()
NESTED = b"[" * 100_000 + b"]" * 100_000

# name -> (answer, streamed?)
KNOWN: dict[str, tuple[Answer, bool]] = {
    "negative usage": (
        respond(200, _completion(b'"prompt_tokens":-1000000,"completion_tokens":1')),
        False,
    ),
    "usage of 10**18": (
        respond(200, _completion(b'"prompt_tokens":5,"completion_tokens":1' + b"0" * 18)),
        False,
    ),
    "usage of 10**400": (
        respond(200, _completion(b'"prompt_tokens":1' + b"0" * 400 + b',"completion_tokens":1')),
        False,
    ),
    "key in a 200 error body": (
        respond(200, b'{"error":{"message":"invalid key ' + KEY + b'"}}'),
        False,
    ),
    "key in a non-JSON 200 body": (
        respond(
            200, b"gateway: key " + KEY + b" refused", headers=[("content-type", "text/plain")]
        ),
        False,
    ),
    "key in a stream error event": (
        _sse(CHUNK, b'event: error\ndata: {"error":{"message":"key ' + KEY + b'"}}\n\n'),
        True,
    ),
    "key in a first stream error event": (
        _sse(b'data: {"error":{"message":"key ' + KEY + b'"}}\n\n'),
        True,
    ),
    "nested body": (respond(200, NESTED), False),
    "nested error body": (respond(500, b'{"error":' + NESTED + b"}"), False),
    "nested stream event": (_sse(CHUNK, b"data: " + NESTED + b"\n\n"), True),
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_a_known_hostile_answer_leaves_the_guards_clean(rig: Rig, name: str) -> None:
    answer, stream = KNOWN[name]
    hostile_call(rig, answer, stream=stream)


@pytest.mark.parametrize("driver", ["asyncio", "trio"])
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_call_cancelled_before_its_answer_holds_nothing(rig: Rig, stream: bool) -> None:
    # The answer never comes: the caller's cancel scope ends the call mid-attempt.
    held = Answer(parts=(b"HTTP/1.1 200 OK\r\n",), then="hang", label="held")
    called = hostile_call(rig, held, stream=stream, how="cancel", cancel_after_s=0.05)
    assert called.result is None, called.result  # cancelled, with nothing raised


# --------------------------------------------------------------------------- the deadline

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"".join(b"x-pad-%d: %s\r\n" % (n, b"p" * 40) for n in range(2))
    + b"content-length: %d\r\n\r\n" % len(OK_BODY)
)
# One byte every 10 ms: each read arrives well within any read timeout, and the whole answer
# takes several seconds, many times the deadline.
TRICKLE_GAP_S = 0.01
DEADLINE_S = 0.5


@pytest.mark.parametrize("part", ["head", "body"])
def test_an_answer_trickled_byte_by_byte_cannot_outlast_the_deadline(rig: Rig, part: str) -> None:
    head, body = (
        (split_bytes(HEAD), [OK_BODY]) if part == "head" else ([HEAD], split_bytes(OK_BODY))
    )
    rig.server.answer = Answer(parts=(*head, *body), gap_s=TRICKLE_GAP_S, label=f"trickled {part}")
    policy = Policy(deadline_s=DEADLINE_S, timeout_s=DEADLINE_S)
    # Real time: the deadline is the point.
    sleep = time.sleep if rig.driver == "sync" else anyio.sleep
    with rig.fresh(clock=time.monotonic, sleep=sleep) as client:
        called = rig.call(client, **ask(policy=policy))

    assert isinstance(called.result, GuardedLLMError), called.result
    assert called.elapsed_s <= DEADLINE_S + SLACK_S, (
        f"the call took {called.elapsed_s:.2f} s against a {DEADLINE_S} s deadline"
    )


# --------------------------------------------------------------------------- Retry-After

HOSTILE_WAITS = [
    ("retry-after", "999999"),
    ("retry-after", "inf"),
    ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
    ("retry-after-ms", "1e400"),
]
HOUR_S = 3600.0


@pytest.mark.parametrize(("header", "value"), HOSTILE_WAITS, ids=[v for _, v in HOSTILE_WAITS])
def test_a_hostile_retry_after_pauses_the_deployment_an_hour_at_most(
    rig: Rig, header: str, value: str
) -> None:
    with rig.fresh() as client:
        rig.server.answer = respond(429, b"{}", headers=[(header, value)], label="429")
        refused = rig.call(client, **ask())
        rig.server.answer = respond(200, OK_BODY)
        rig.clock.advance(HOUR_S)
        later = rig.call(client, **ask())

    assert isinstance(refused.result, GuardedLLMError), refused.result
    retry_after = getattr(refused.result, "retry_after", None)
    assert retry_after is None or math.isfinite(retry_after), f"wait {retry_after}"
    assert isinstance(later.result, ChatCompletion), (
        f"an hour after a 429 with {header}: {value}, the deployment still refuses: {later.result}"
    )


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("vendor", VENDORS)
def test_no_key_follows_a_redirect_to_another_origin(rig: Rig, vendor: Vendor) -> None:
    # A client the user brought, following redirects (guardedllm's own never does).
    with HostileServer(respond(200, OK_BODY)) as elsewhere:
        rig.server.answer = respond(307, b"", headers=[("location", elsewhere.url + "/v1/x")])
        http = rig.run(_redirecting_client, rig.driver)
        try:
            with rig.fresh(http_client=http) as client:
                rig.call(client, **ask(vendor))
        finally:
            rig.run(_close, http)
        received = elsewhere.received

    assert received, "the redirect was not followed: the test proves nothing"
    for request in received:
        for name, header in request.headers.items():
            for key in KEYS.values():
                assert key not in header, f"the key went to {elsewhere.url} in {name}"


def _redirecting_client(driver: str) -> httpx.Client | httpx.AsyncClient:
    if driver == "sync":
        return httpx.Client(follow_redirects=True)
    return httpx.AsyncClient(follow_redirects=True)


async def _aclose(http: httpx.AsyncClient) -> None:
    await http.aclose()


def _close(http: httpx.Client | httpx.AsyncClient) -> Any:
    if isinstance(http, httpx.Client):
        http.close()
        return None
    return _aclose(http)


# --------------------------------------------------------------------------- after close


def test_a_call_on_a_closed_client_raises_a_guardedllm_error(rig: Rig) -> None:
    rig.server.answer = respond(200, OK_BODY)
    with rig.fresh() as client:
        pass
    called = rig.call(client, **ask())
    assert isinstance(called.result, GuardedLLMError), called.result
