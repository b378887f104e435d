"""An incremental Server-Sent Events parser: feed bytes as they arrive, get whole events back.

Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR; a blank line dispatches the
event; ``data`` lines join with LF; a line starting with ``:`` is a comment; an unknown field is
ignored. One event (its data lines, and the line still unfinished) may hold at most
``max_buffer`` characters: a server that never ends a line, or sends data lines that never meet
their blank line, is refused with ``ResponseFormatError`` instead of exhausting memory. Pure: no
I/O, no clock.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

from guardedllm.errors import ResponseFormatError

__all__ = ["SSEParser", "ServerSentEvent"]

# One event larger than this is not a chat stream we understand: the biggest real events
# (a long tool-call argument delta) are kilobytes.
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024


class ServerSentEvent(NamedTuple):
    """One dispatched event. A named tuple, not an attrs class: one is made per stream chunk,
    and a tuple is made in a third of the time."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Turns a byte stream into ``ServerSentEvent`` values, one ``feed`` at a time."""

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._text = ""
        self._max_buffer = max_buffer
        self._event = ""
        self._data: list[str] = []
        self._size = 0  # characters in _data, with their LFs: the event read so far
        self._id: str | None = None
        self._retry: int | None = None
        self._pending_cr = False
        self._first = True
        self._split = False  # whether the incremental decoder holds part of a character

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse more bytes; return the events they complete (possibly none)."""
        try:
            text = self._decode(data)
        except UnicodeDecodeError as exc:
            raise ResponseFormatError(
                f"The event stream is not valid UTF-8 ({exc.reason}); the provider sent a "
                "corrupt stream. Retry the call; report it to the provider if it persists.",
                excerpt=data[:200].decode("utf-8", "replace"),
            ) from None
        if self._first and text:
            text = text.removeprefix("\ufeff")
            self._first = False
        return self._consume(text)

    def close(self) -> list[ServerSentEvent]:
        """End of input: a final line without a newline still counts; no event is dispatched
        without its blank line (per the spec, an unterminated event is dropped)."""
        try:
            text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ResponseFormatError(
                "The event stream ended inside a UTF-8 character: the stream was truncated."
            ) from None
        events = self._consume(text)
        if self._text:
            self._line(self._text)
            self._text = ""
        return events

    def _decode(self, data: bytes) -> str:
        # Most reads end on a character boundary: decode them whole, and leave the incremental
        # decoder to a read that splits a character (or that follows one that did).
        if not self._split:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        text = self._decoder.decode(data)
        self._split = bool(self._decoder.getstate()[0])  # the start of a character is held
        return text

    def between_events(self) -> bool:
        """True when nothing is pending: no part of a line, an event, a line end or a
        character, and the stream's start (a byte-order mark) is behind. A read that is then
        exactly ``data: ...\n\n`` is one "message" event with that data, whatever parses it."""
        return not (
            self._text
            or self._data
            or self._event
            or self._pending_cr
            or self._split
            or self._first
        )

    @property
    def has_partial_event(self) -> bool:
        """True while an event has begun but its blank line has not arrived."""
        return bool(self._text or self._data)

    def _consume(self, text: str) -> list[ServerSentEvent]:
        buffer = self._text + text if self._text else text
        if not self._pending_cr and "\r" not in buffer:
            return self._consume_lf(buffer)
        return self._consume_any(text)

    def _consume_any(self, text: str) -> list[ServerSentEvent]:
        """Lines ending in CRLF, LF or CR, with a CR at the end of one feed and its LF at the
        start of the next read as one line end."""
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        buffer = self._text + text
        events: list[ServerSentEvent] = []
        start = 0
        length = len(buffer)
        while start < length:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            elif cr + 1 < length:
                end = cr
                nxt = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
            else:  # a CR at the very end: its LF may come in the next feed
                end, nxt = cr, cr + 1
                self._pending_cr = True
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._text = buffer[start:]
        self._check_size()
        return events

    def _consume_lf(self, buffer: str) -> list[ServerSentEvent]:
        """``_consume`` for text whose lines all end in LF (what every vendor sends)."""
        if (
            not self._data
            and buffer.startswith("data:")
            and buffer.endswith("\n\n")
            and buffer.count("\n") == 2
        ):
            # The commonest read of all, one whole event of one data line, read as the loop
            # below reads it.
            value = buffer[5:-2]
            self._text = ""
            single = ServerSentEvent(
                self._event or "message",
                value[1:] if value.startswith(" ") else value,
                self._id,
                self._retry,
            )
            self._event = ""
            return [single]
        lines = buffer.split("\n")
        self._text = lines.pop()  # what follows the last LF: the start of a line to come
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif line.startswith("data:"):  # the common line, as _line reads it
                value = line[6:] if line.startswith(" ", 5) else line[5:]
                self._data.append(value)
                self._size += len(value) + 1
            else:
                self._line(line)
        self._check_size()
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:  # the spec drops an event with no data lines
            self._event = ""
            return None
        # An event that arrived whole in one read has had no check between its lines.
        self._check_size()
        event = ServerSentEvent(
            self._event or "message", "\n".join(self._data), self._id, self._retry
        )
        self._event = ""
        self._data = []
        self._size = 0
        return event

    def _check_size(self) -> None:
        """Refuse an event, or a line, larger than ``max_buffer``: the event read so far and
        the line still unfinished are all this parser holds."""
        if self._size + len(self._text) <= self._max_buffer:
            return
        what = "line" if len(self._text) > self._max_buffer else "event"
        held = self._text if what == "line" else "\n".join(self._data[:3])
        raise ResponseFormatError(
            f"An event-stream {what} exceeded {self._max_buffer} bytes without ending; the "
            "provider's stream is malformed. Retry the call.",
            excerpt=held[:200],
        )
