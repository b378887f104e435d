"""The SSE parser (``providers/_sse.py``) against hostile bytes and hostile framing.

- Any bytes, fed in any reads, give well-formed events or a ``ResponseFormatError``: nothing
  else escapes, whatever the UTF-8 (invalid, split across reads, a byte-order mark), the line
  ends (CRLF, LF, lone CR, a CR at the end of one read and its LF at the start of the next)
  or the lines (missing blank lines, comments, unknown fields, very long lines).
- The events do not depend on how the bytes were cut into reads.
- The parser holds at most about ``max_buffer`` bytes of an event that never ends, as its
  docstring promises: a server streaming ``data:`` lines without ever a blank line is refused,
  not buffered until memory runs out.
"""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from fuzz._profiles import fuzz
from fuzz._wire import VENDORS, feeds, sse_framing, stream_events
from guardedllm.errors import GuardedLLMError, ResponseFormatError
from guardedllm.providers._sse import ServerSentEvent, SSEParser

# Lines an event stream is made of, well-formed or not.
_lines = st.sampled_from(
    [
        b"data: {}",
        b"data:x",
        b"data",
        b"event: message_start",
        b"event:",
        b"id: 7",
        b"id: a\x00b",
        b"retry: 1500",
        b"retry: soon",
        b": comment",
        b"unknown: field",
        b"",
        b"\xef\xbb\xbfdata: bom",
        b"data: \xff\xfe",
        b"data: caf\xc3\xa9",
    ]
)
_endings = st.sampled_from([b"\n", b"\r\n", b"\r"])
raw_streams = st.lists(st.tuples(_lines, _endings), max_size=25).map(
    lambda pairs: b"".join(line + end for line, end in pairs)
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """A vendor's event stream with hostile framing, or lines put together at random."""
    if draw(st.booleans()):
        return draw(raw_streams)
    vendor = draw(st.sampled_from(VENDORS))
    return draw(sse_framing(b"".join(draw(stream_events(vendor)))))


def parse(reads: list[bytes]) -> tuple[list[ServerSentEvent], GuardedLLMError | None]:
    """Every event ``reads`` give, then the error that stopped the parser (None if none)."""
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    try:
        for read in reads:
            events += parser.feed(read)
        events += parser.close()
    except ResponseFormatError as error:
        return events, error
    return events, None


@fuzz(120)
@given(data=st.data())
def test_any_bytes_give_well_formed_events_or_a_response_format_error(data: st.DataObject) -> None:
    body = data.draw(streams(), label="stream")
    events, _ = parse(data.draw(feeds(body), label="reads"))
    for event in events:
        assert isinstance(event, ServerSentEvent), event
        assert isinstance(event.event, str), event
        assert event.event, event
        assert isinstance(event.data, str), event
        assert event.id is None or (isinstance(event.id, str) and "\x00" not in event.id), event
        assert event.retry is None or (isinstance(event.retry, int) and event.retry >= 0), event


@fuzz(120)
@given(data=st.data())
def test_the_events_do_not_depend_on_how_the_bytes_were_cut(data: st.DataObject) -> None:
    body = data.draw(streams(), label="stream")
    whole, whole_error = parse([body])
    cut, cut_error = parse(data.draw(feeds(body), label="reads"))
    assert (whole_error is None) == (cut_error is None), (whole_error, cut_error)
    if whole_error is None:
        assert cut == whole


# The parser's limit in these tests, and how far past it the hostile server goes.
MAX_BUFFER = 64 * 1024
SENT_BYTES = 16 * MAX_BUFFER
# What the parser may hold beyond the limit: a read in flight, Python's per-object overhead.
HOLD_SLACK = 4


@fuzz(8)
@given(
    line=st.sampled_from([b"data: ", b"data:", b'data: {"a":', b"event: x\ndata: "]),
    width=st.sampled_from([1, 100, 4000]),
    ending=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    read_size=st.sampled_from([512, 16 * 1024]),
)
def test_an_event_that_never_ends_is_refused_not_buffered(
    line: bytes, width: int, ending: bytes, read_size: int
) -> None:
    unit = line + b"x" * width + ending
    stream = unit * (SENT_BYTES // len(unit) + 1)
    parser = SSEParser(max_buffer=MAX_BUFFER)
    tracemalloc.start()
    try:
        for start in range(0, len(stream), read_size):
            parser.feed(stream[start : start + read_size])
        held, _ = tracemalloc.get_traced_memory()
    except ResponseFormatError:
        return  # refused: the property holds
    finally:
        tracemalloc.stop()
    del stream, unit
    assert held <= HOLD_SLACK * MAX_BUFFER, (
        f"{len(line) + width} bytes a line, never a blank line: the parser holds {held} bytes "
        f"of one event after {SENT_BYTES} bytes, with max_buffer={MAX_BUFFER}"
    )
