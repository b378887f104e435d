"""Whole HTTP answers a hostile upstream sends, as hypothesis strategies for ``HostileServer``.

The body comes from ``_wire`` (a vendor's answer, error or stream, broken); around it these
strategies break the HTTP itself: the status, the content type and encoding (a gzip body, or a
``Content-Encoding`` the body does not have), the framing (length, chunked, until close, a
length that lies), how the bytes arrive (in pieces, with pauses), and how the connection ends
(close, reset, hang). Transport-level faults replace the answer outright: a connection closed
before or in the middle of the head, a status line that is not HTTP, a redirect.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Literal

from hypothesis import strategies as st

from ._hostile import Answer, respond
from ._wire import KEYS, RETRY_AFTERS, Vendor, error_bodies, response_bodies, stream_bodies

__all__ = ["hostile_answers"]

# Pauses between the pieces of an answer: short enough that a call stays well inside its
# per-attempt timeout, long enough that the pieces arrive as separate reads.
GAPS_S = (0.0, 0.0, 0.001, 0.003)
# "close" several times over: an answer should mostly end normally, and a hang costs a whole
# attempt timeout.
ENDINGS: tuple[Literal["close", "hang", "reset"], ...] = ("close",) * 10 + ("reset", "hang")
_CONTENT_TYPES = ("application/json", "text/event-stream", "text/html", "text/plain", "")


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@st.composite
def _transport_fault(draw: st.DrawFn) -> Answer:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n"
    fault = draw(
        st.sampled_from(
            ["nothing", "half_head", "not_http", "lying_length", "bad_chunks", "http10", "hang"]
        )
    )
    if fault == "nothing":
        return Answer(parts=(), then=draw(st.sampled_from(["close", "reset"])), label=fault)
    if fault == "half_head":
        return Answer(parts=(head[: draw(st.integers(1, len(head) - 1))],), label=fault)
    if fault == "not_http":
        garbage = draw(st.sampled_from([b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 abc\r\n\r\n", b"\x00"]))
        return Answer(parts=(garbage,), label=fault)
    if fault == "lying_length":  # promises 20 bytes, sends 3, then closes
        return Answer(parts=(head, b'{"a'), label=fault)
    if fault == "bad_chunks":
        return Answer(
            parts=(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nxx\r\n",),
            label=fault,
        )
    if fault == "http10":
        return Answer(parts=(b"HTTP/1.0 200 OK\r\n\r\n{}",), label=fault)
    return Answer(parts=(b"HTTP/1.1 200 OK\r\n",), then="hang", label=fault)


@st.composite
def hostile_answers(draw: st.DrawFn, vendor: Vendor, *, stream: bool) -> Answer:
    """An answer to a call to ``vendor``'s deployment (a streamed one if ``stream``)."""
    kind = draw(st.sampled_from(["answer", "answer", "answer", "error", "error", "transport"]))
    if kind == "transport":
        return draw(_transport_fault())
    headers: list[tuple[str, str]] = []
    if kind == "error":
        status, body = draw(error_bodies(vendor))
        content_type = "application/json"
        if draw(st.booleans()):
            headers.append(("retry-after", draw(st.sampled_from(RETRY_AFTERS))))
        if 300 <= status < 400:
            headers.append(("location", draw(st.sampled_from(["/elsewhere", "http://[::1"]))))
    else:
        status = draw(st.sampled_from([200, 200, 200, 201, 203, 206]))
        source = draw(st.sampled_from(["vendor", "vendor", "vendor", "text"]))
        if source == "text":  # a proxy's page, quoting the key it was sent
            body = b"upstream refused key " + KEYS[vendor].encode()
        elif stream:
            body = draw(stream_bodies(vendor))
        else:
            body = draw(response_bodies(vendor))
        content_type = "text/event-stream" if stream else "application/json"
        content_type = draw(st.sampled_from([content_type, content_type, *_CONTENT_TYPES]))
    if content_type:
        headers.append(("content-type", content_type))
    encoding = draw(st.sampled_from(["identity", "identity", "gzip", "bogus"]))
    if encoding == "gzip":
        body = _gzip(body)
        headers.append(("content-encoding", "gzip"))
    elif encoding == "bogus":  # says gzip (or something unknown) and is not
        headers.append(("content-encoding", draw(st.sampled_from(["gzip", "br", "x-zip"]))))
    framing = draw(st.sampled_from(["length", "length", "chunked", "close"]))
    answer = respond(status, body, headers=headers, framing=framing, label=f"{kind} {status}")
    whole = b"".join(answer.parts)
    pieces = draw(st.integers(1, 6))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(whole) - 1)), max_size=pieces - 1)))
    bounds = [0, *(c for c in cuts if c < len(whole)), len(whole)]
    return Answer(
        parts=tuple(whole[a:b] for a, b in itertools.pairwise(bounds) if b > a),
        gap_s=draw(st.sampled_from(GAPS_S)),
        then=draw(st.sampled_from(ENDINGS)),
        label=answer.label,
    )
