"""Memory per call against answers built to exhaust it, through every driver.

Measured with ``tracemalloc`` (Python allocations in this process, the loopback server's
included: it allocates little, and ``journal=False`` keeps it from recording requests):

- **peak per call**: no hostile answer takes a call's peak above ``PEAK_BOUND``, three times the
  largest event the SSE parser accepts (``_sse.DEFAULT_MAX_BUFFER``) and far above the body cap
  the clients use here (``MAX_RESPONSE_BYTES``, 1 MiB): a gzip bomb, a body without end, an
  event that never ends, one endless line;
- **a stream's length**: a stream of valid chunks that goes on past ``max_tokens`` takes no
  more memory at twice the length (the peak grows by less than ``GROWTH_BOUND``);
- **retained per call**: closing streams early, dropping them unclosed (sync) and cancelling
  calls (async) leave nothing behind: over ``CALLS`` calls, after a warm-up, the memory still
  allocated grows by less than ``RETAINED_PER_CALL`` a call.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from fuzz._hostile import Answer, HostileServer, gzip_bomb, respond
from fuzz._rig import MAX_RESPONSE_BYTES, Rig, open_rig
from fuzz._wire import DEPLOYMENTS
from guardedllm.providers._sse import DEFAULT_MAX_BUFFER

MiB = 1024 * 1024
PEAK_BOUND = 3 * DEFAULT_MAX_BUFFER
GROWTH_BOUND = 1 * MiB
RETAINED_PER_CALL = 1024
CALLS = 40
WARM_UP = 10

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
ASK: dict[str, Any] = {"model": DEPLOYMENTS["openai"], "messages": MESSAGES, "max_tokens": 16}
OK_BODY = (
    b'{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}'
)
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
CHUNK = (
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"' + b"word " * 100 + b'"}}]}\n\n'
)
DONE = b"data: [DONE]\n\n"
BOMB = gzip_bomb(16 * MiB)  # ~16 KiB on the wire

# name -> (answer, streamed?)
HOSTILE: dict[str, tuple[Answer, bool]] = {
    "gzip bomb": (
        respond(
            200, BOMB, headers=[("content-type", "application/json"), ("content-encoding", "gzip")]
        ),
        False,
    ),
    "gzip bomb, streamed": (
        respond(
            200, BOMB, headers=[("content-type", "text/event-stream"), ("content-encoding", "gzip")]
        ),
        True,
    ),
    "a body without end": (
        Answer(parts=(JSON_HEAD, b'{"a":"'), repeat=b"x" * 65536, repeat_bytes=64 * MiB),
        False,
    ),
    "an event that never ends": (
        Answer(
            parts=(SSE_HEAD, CHUNK), repeat=b"data: " + b"x" * 1000 + b"\n", repeat_bytes=32 * MiB
        ),
        True,
    ),
    "one endless line": (
        Answer(parts=(SSE_HEAD, CHUNK, b"data: "), repeat=b"x" * 65536, repeat_bytes=32 * MiB),
        True,
    ),
}


@pytest.fixture
def rig(driver: str) -> Iterator[Rig]:
    with HostileServer(journal=False) as server, open_rig(driver, server) as opened:
        yield opened


def peak_of_call(rig: Rig, client: Any, **kwargs: Any) -> int:
    """The peak of memory allocated during one call, above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rig.call(client, **kwargs)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def warm(rig: Rig, client: Any) -> None:
    """One ordinary call first: what the first call allocates once (a connection pool, an
    event loop's transport) is not the hostile answer's."""
    answer = rig.server.answer
    rig.server.answer = respond(200, OK_BODY)
    rig.call(client, **ASK)
    rig.server.answer = answer


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_answer_takes_bounded_memory(rig: Rig, name: str) -> None:
    answer, stream = HOSTILE[name]
    with rig.fresh() as client:
        warm(rig, client)
        rig.server.answer = answer
        peak = peak_of_call(rig, client, stream=stream, **ASK)
    assert peak <= PEAK_BOUND, (
        f"{name}: one call peaked at {peak / MiB:.1f} MiB (bound {PEAK_BOUND / MiB:.0f} MiB, "
        f"body cap {MAX_RESPONSE_BYTES / MiB:.0f} MiB)"
    )


def endless_chunks(total: int) -> Answer:
    """A stream of valid content chunks, ``total`` bytes of them, far past any max_tokens."""
    return Answer(
        parts=(SSE_HEAD, CHUNK), repeat=CHUNK * 16, repeat_bytes=total, then="close", label="chunks"
    )


def test_a_stream_past_max_tokens_takes_no_more_memory_for_being_longer(rig: Rig) -> None:
    # Both lengths are past the body cap and thousands of chunks past max_tokens: whatever
    # bounds such a stream has cut both by then.
    peaks = []
    with rig.fresh() as client:
        warm(rig, client)
        for total in (MAX_RESPONSE_BYTES + MiB // 4, 3 * (MAX_RESPONSE_BYTES + MiB // 4)):
            rig.server.answer = endless_chunks(total)
            peaks.append(peak_of_call(rig, client, stream=True, **ASK))
    growth = peaks[1] - peaks[0]
    assert growth <= GROWTH_BOUND, (
        f"twice the stream took {growth / MiB:.1f} MiB more at its peak "
        f"({peaks[0] / MiB:.1f} -> {peaks[1] / MiB:.1f} MiB)"
    )


# Deep enough that every allocation of the test server's threads has its frames in it.
_FRAMES = 64
# The loopback server runs in this process: its threads and sockets (a held connection lives
# until the client hangs up, or HANG_MAX_S) are the test's, not the client's.
_SERVER = (
    tracemalloc.Filter(False, "*/raw_server.py", all_frames=True),
    tracemalloc.Filter(False, "*/fuzz/_hostile.py", all_frames=True),
)


def _held_by_client(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.filter_traces(_SERVER).statistics("filename"))


def test_streams_closed_early_and_calls_cancelled_leave_nothing_behind(rig: Rig) -> None:
    # The stream sends two chunks and holds the connection open: every call stops reading
    # in the middle of a body.
    rig.server.answer = Answer(parts=(SSE_HEAD, CHUNK, CHUNK), then="hang", label="held")
    hows = ("close_early", "abandon") if rig.driver == "sync" else ("close_early", "cancel")
    with rig.fresh() as client:
        for how in hows:
            # A cancel at 0 s lands inside the call, before any answer: the request is out.
            calls = [{"how": how, "cancel_after_s": 0.0, "stream": True, **ASK}] * (WARM_UP + CALLS)
            for kwargs in calls[:WARM_UP]:
                rig.call(client, **kwargs)
            gc.collect()
            tracemalloc.start(_FRAMES)
            try:
                before = _held_by_client(tracemalloc.take_snapshot())
                for kwargs in calls[WARM_UP:]:
                    rig.call(client, **kwargs)
                gc.collect()
                rig.run(gc.collect)  # the event loop's thread frees what it holds too
                retained = _held_by_client(tracemalloc.take_snapshot()) - before
            finally:
                tracemalloc.stop()
            assert retained <= RETAINED_PER_CALL * CALLS, (
                f"{how}: {retained / CALLS:.0f} bytes a call stay allocated after {CALLS} calls"
            )
