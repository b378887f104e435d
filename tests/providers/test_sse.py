"""The SSE parser's bound on what it holds: one event, and the line still unfinished."""

from __future__ import annotations

import pytest

from guardedllm.errors import ResponseFormatError
from guardedllm.providers._sse import DEFAULT_MAX_BUFFER, ServerSentEvent, SSEParser

LIMIT = 1000


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_data_lines_that_never_meet_their_blank_line_are_refused_at_the_bound(
    ending: str,
) -> None:
    parser = SSEParser(max_buffer=LIMIT)
    held_per_line = 100  # 99 characters of data and the LF that joins it to the next
    line = ("data: " + "x" * (held_per_line - 1) + ending).encode()
    lines = 0

    def feed_until_refused() -> None:
        nonlocal lines
        while lines < 100 * LIMIT:  # bounded: a parser that never refuses fails the test
            lines += 1
            parser.feed(line)

    with pytest.raises(ResponseFormatError, match=f"event exceeded {LIMIT} bytes"):
        feed_until_refused()
    # Refused by the line that took it past the bound: it never held more than that.
    assert lines == LIMIT // held_per_line + 1


def test_an_event_too_large_in_one_read_is_refused() -> None:
    parser = SSEParser(max_buffer=LIMIT)
    with pytest.raises(ResponseFormatError, match="event exceeded"):
        parser.feed(b"data: " + b"x" * 600 + b"\ndata: " + b"y" * 600 + b"\n\n")


def test_a_line_that_never_ends_is_refused_at_the_bound() -> None:
    parser = SSEParser(max_buffer=LIMIT)
    parser.feed(b"data: " + b"x" * (LIMIT - 10))
    with pytest.raises(ResponseFormatError, match="line exceeded"):
        parser.feed(b"x" * 20)


def test_events_up_to_the_bound_pass_and_the_count_starts_again_with_each() -> None:
    parser = SSEParser(max_buffer=LIMIT)
    event = b"data: " + b"a" * 400 + b"\ndata: " + b"b" * 400 + b"\n\n"
    for _ in range(10):  # ten times the bound in all, one event at a time
        assert parser.feed(event) == [ServerSentEvent(data="a" * 400 + "\n" + "b" * 400)]
    assert parser.feed(b": comments are not held " + b"c" * 2 * LIMIT + b"\n") == []


def test_the_default_bound_is_generous() -> None:
    # The largest real events (a long tool-call argument delta) are kilobytes.
    assert DEFAULT_MAX_BUFFER >= 1024 * 1024
