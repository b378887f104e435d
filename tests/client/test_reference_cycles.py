"""A call leaves nothing for the garbage collector: every value it made is freed by reference
counting once the caller lets go. A stream's chunks in a reference cycle would stay in memory
until a collection ran, and each collection would walk them (the cost of a long stream grew by
a tenth that way)."""

from __future__ import annotations

import gc
import types
import weakref
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from guardedllm import AsyncClient, Client, Registry
from guardedllm.testing import FakeProvider
from session import open_session
from support import DEPLOYMENTS

MESSAGES = [{"role": "user", "content": "Say hello to the test suite."}]
STREAMS_CLOSED_EARLY = 10


def _cyclic_garbage(action: Callable[[], object]) -> Counter[str]:
    """The types of the guardedllm and httpx objects that ``action`` left in reference cycles."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        action()
        gc.collect()
        return Counter(
            type(value).__qualname__
            for value in gc.garbage
            if type(value).__module__.startswith(("guardedllm", "httpx"))
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_call_leaves_no_reference_cycles(
    driver: str, registry: Registry, fake_provider: FakeProvider, deployment: str, stream: bool
) -> None:
    fake_provider.script(content="one two three four five six", chunks=3)
    with open_session(driver, registry) as session:

        def one_call() -> None:
            session.create(model=deployment, messages=MESSAGES, max_tokens=50, stream=stream)

        one_call()  # first-call work (encodings, caches, connections) out of the way
        assert _cyclic_garbage(one_call) == Counter()


def test_a_stream_dropped_after_its_first_chunk_is_freed_at_once(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    # The caller stops reading and drops the stream without closing it: reference counting
    # alone must free it (closing its connection on the way), with no collection to wait for.
    fake_provider.script(content="one two three four five six", chunks=3)
    with open_session("sync", registry) as session:
        client = session.client
        assert isinstance(client, Client)
        gc.disable()
        try:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=True
            )
            next(iter(stream))
            response = weakref.ref(stream.response)
            dropped = weakref.ref(stream)
            del stream
            assert dropped() is None
            assert response() is None
        finally:
            gc.enable()


def _live_tracebacks() -> int:
    gc.collect()
    return sum(1 for value in gc.get_objects() if isinstance(value, types.TracebackType))


def test_streams_closed_early_are_freed_and_leave_nothing_behind(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    # A caller that takes the first chunk and leaves the stream's block, again and again:
    # each stream is freed at once, and nothing is kept from one to the next. (aiohttp raises
    # one shared error for a read after release; raised once per stream, its traceback grew
    # by a stream's frames each time, about 14 KiB a stream for good.)
    fake_provider.script(content="one two three four five six", chunks=3)
    with open_session(driver, registry) as session:
        client = session.client

        async def read_one_async() -> weakref.ref[httpx.Response]:
            assert isinstance(client, AsyncClient)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=True
            )
            async with stream:
                async for _ in stream:
                    break
            return weakref.ref(stream.response)

        def read_one() -> weakref.ref[httpx.Response]:
            if not isinstance(client, Client):
                response: weakref.ref[httpx.Response] = session.run_async(read_one_async)
                return response
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=True
            )
            with stream:
                next(iter(stream))
            return weakref.ref(stream.response)

        read_one()  # first-call work (encodings, caches, connections) out of the way
        before = _live_tracebacks()
        gc.disable()
        try:
            responses = [read_one() for _ in range(STREAMS_CLOSED_EARLY)]
            assert [r() for r in responses] == [None] * STREAMS_CLOSED_EARLY
        finally:
            gc.enable()
        # The server's threads may hold an exception's traceback for a moment while handling
        # it: allow for that, far below the three per stream that the shared error kept.
        assert _live_tracebacks() - before < STREAMS_CLOSED_EARLY
