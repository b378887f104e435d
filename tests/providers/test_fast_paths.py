"""The readers' fast paths against their checked twins.

Every wire answer is read by a fast path for the plain shape vendors send and, for anything
else, by a checked reader that names the bad field. Hypothesis feeds both answers that mix
plain and odd values: the fast path must either decline (None) or give exactly what the checked
reader gives, and it must decline whatever the checked reader refuses. The SSE parser's fast
path for LF-only text must give the same events, however the bytes are split.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm.errors import GuardedLLMError
from guardedllm.providers import _openai_response as reader
from guardedllm.providers import _openai_stream as stream_reader
from guardedllm.providers._sse import ServerSentEvent, SSEParser
from guardedllm.providers.base import Target, load_json
from guardedllm.types import ChatCompletionChunk, ChoiceDelta, ChunkChoice

TARGET = Target(deployment="d", provider="p", kind="openai", base_url="http://x", model="m")

# Values a field may hold: mostly plausible, now and then the wrong type.
ODD = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False))


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(good, good, good, good, good, ODD)


TEXT = _mostly(st.one_of(st.none(), st.text(max_size=5)))
INDEX = st.one_of(
    st.none(), st.integers(0, 3), st.integers(0, 3), st.booleans(), st.text(max_size=1)
)
FINISH = _mostly(st.sampled_from([None, "stop", "length", "eos_token", "odd"]))
USAGE = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"prompt_tokens": st.integers(0, 9), "completion_tokens": st.integers(0, 9)}
    ),
    st.just({"prompt_tokens": "x"}),
)


def _maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda value: {key: value}))


def _merged(*parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*parts).map(lambda dicts: {k: v for d in dicts for k, v in d.items()})


DELTA = _mostly(
    _merged(
        _maybe("content", TEXT),
        _maybe("role", st.one_of(st.just("assistant"), st.just(""), TEXT)),
        _maybe("refusal", TEXT),
        _maybe("reasoning_content", TEXT),
        _maybe("tool_calls", st.one_of(st.none(), st.just([]))),
    )
)
MESSAGE = _mostly(
    _merged(
        _maybe("content", TEXT),
        _maybe("refusal", TEXT),
        _maybe("reasoning_content", TEXT),
        _maybe("tool_calls", st.one_of(st.none(), st.just([]))),
        _maybe("role", st.just("assistant")),
    )
)


def _choices(body_key: str, body: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    choice = _mostly(
        _merged(_maybe("index", INDEX), _maybe("finish_reason", FINISH), _maybe(body_key, body))
    )
    return _mostly(st.lists(choice, max_size=3))


def _answers(body_key: str, body: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return _merged(
        _maybe("id", TEXT),
        _maybe("created", _mostly(st.integers(0, 9))),
        _maybe("model", TEXT),
        _maybe("system_fingerprint", TEXT),
        _maybe("usage", USAGE),
        _choices(body_key, body).map(lambda choices: {"choices": choices}),
    )


def _outcome(read: Any, data: dict[str, Any]) -> Any:
    """What a reader gives: its value, or the text of the error it raises."""
    try:
        return read(data, TARGET)
    except GuardedLLMError as exc:
        return f"error: {exc}"


def _agree(fast: Any, checked: Any) -> None:
    # The fast path declines (None) or gives the same value, or the same error (a bad usage
    # is read by the same code on both paths).
    assert fast is None or fast == checked


@given(_answers("delta", DELTA))
def test_the_fast_chunk_reader_agrees_with_the_checked_one(data: dict[str, Any]) -> None:
    _agree(_outcome(stream_reader._plain_chunk, data), _outcome(stream_reader._checked_chunk, data))


@given(_answers("message", MESSAGE))
def test_the_fast_completion_reader_agrees_with_the_checked_one(data: dict[str, Any]) -> None:
    _agree(_outcome(reader._plain_completion, data), _outcome(reader._checked_completion, data))


def test_a_plain_chunk_takes_the_fast_path() -> None:
    data = {
        "id": "c",
        "created": 1,
        "model": "",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
    }
    chunk = stream_reader._plain_chunk(data, TARGET)
    assert chunk is not None
    assert (chunk.model, chunk.choices[0].delta.content) == ("m", "hi")


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(st.lists(inner), st.dictionaries(st.text(), inner)),
    max_leaves=8,
)
JSON_TEXTS = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.tuples(JSON_VALUES.map(json.dumps), st.sampled_from([" ", "\n", " x", "\u00a0", "}"])).map(
        "".join
    ),
    st.text(max_size=8),
)


@given(JSON_TEXTS)
def test_the_fast_json_reader_reads_what_json_loads_reads(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            load_json(text)
    else:
        # Compared by repr: "NaN" reads as a float nan, which equals nothing, itself included.
        assert repr(load_json(text)) == repr(expected)


# --------------------------------------------------------------------------- SSE

LINES = st.sampled_from(
    [
        "data: {}",
        "data:x",
        "data",
        "data: ",
        ": comment",
        "event: error",
        "event:",
        "id: 7",
        "retry: 10",
        "retry: x",
        "other: y",
        "",
        "data: é ü €",
    ]
)
ENDINGS = st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"])


class GeneralParser(SSEParser):
    """The parser with its LF-only fast path turned off: every line through the general one."""

    def _consume(self, text: str) -> list[ServerSentEvent]:
        return self._consume_any(text)


@given(
    st.lists(st.tuples(LINES, ENDINGS), max_size=12),
    st.booleans(),
    st.lists(st.integers(1, 7), max_size=20),
)
def test_the_parser_gives_the_same_events_however_bytes_are_split(
    lines: list[tuple[str, str]], bom: bool, cuts: list[int]
) -> None:
    text = ("\ufeff" if bom else "") + "".join(line + end for line, end in lines)
    raw = text.encode()

    general = GeneralParser()
    expected = general.feed(raw) + general.close()
    whole = SSEParser()
    assert whole.feed(raw) + whole.close() == expected

    split = SSEParser()
    got = []
    position = 0
    for cut in cuts:
        got += split.feed(raw[position : position + cut])
        position += cut
    got += split.feed(raw[position:]) + split.close()
    assert got == expected


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_line_endings_do_not_change_the_events(ending: str) -> None:
    text = ending.join(["event: x", "data: a", "data: b", "", "data: c", "", ""])
    parser = SSEParser()
    events = parser.feed(text.encode()) + parser.close()
    assert [(e.event, e.data) for e in events] == [("x", "a\nb"), ("message", "c")]


def test_a_chunk_the_fast_path_builds_is_a_whole_frozen_value() -> None:
    data = {
        "id": "c",
        "created": 1,
        "model": "gpt",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}],
    }
    chunk = stream_reader._plain_chunk(data, TARGET)
    built = ChatCompletionChunk(
        id="c",
        created=1,
        model="gpt",
        choices=(ChunkChoice(index=0, delta=ChoiceDelta(content="hi", role="assistant")),),
    )
    assert chunk == built
    assert hash(chunk) == hash(built)
    assert chunk.to_dict() == built.to_dict()
    assert repr(chunk) == repr(built)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        chunk.id = "other"  # type: ignore[misc]


def _chunk_event(content: str) -> bytes:
    chunk = {
        "id": "c",
        "created": 1,
        "model": "gpt",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _decoded(reads: list[bytes]) -> list[Any]:
    decoder = stream_reader.OpenAIStreamDecoder(TARGET)
    found: list[Any] = []
    for read in reads:
        try:
            found.extend(decoder.feed(read))
        except GuardedLLMError as exc:
            found.append(f"error: {type(exc).__name__}")
            break
    return found


@pytest.mark.parametrize(
    "stream",
    [
        [_chunk_event("a"), _chunk_event("b"), b"data: [DONE]\n\n"],
        [b"\xef\xbb\xbf" + _chunk_event("bom"), _chunk_event("next")],  # a byte-order mark first
        [_chunk_event("a"), b"event: ping\n", _chunk_event("named"), _chunk_event("plain")],
        [_chunk_event("a"), b'data: {"x"', b": 1}\n\n", _chunk_event("after a split")],
        [_chunk_event("a"), _chunk_event("crlf").replace(b"\n", b"\r\n"), _chunk_event("c")],
        [_chunk_event("a"), _chunk_event("cr inside").replace(b", ", b",\r ", 1)],
        [_chunk_event("a"), _chunk_event("lf inside").replace(b", ", b",\n ", 1)],
        [_chunk_event("a"), b"id: 7\n", _chunk_event("with id")],
        [_chunk_event("a"), _chunk_event("\u00e9")[:-4], _chunk_event("\u00e9")[-4:]],
        [_chunk_event("a"), b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'],
        [_chunk_event("a"), b"event: error\n", _chunk_event("as error")],
    ],
)
def test_whole_event_reads_decode_as_the_parser_reads_them(stream: list[bytes]) -> None:
    # One read per event (what a network usually delivers, and what the decoder's shortcut
    # takes) against the same bytes one at a time (which never takes it).
    whole = _decoded(stream)
    bytewise = _decoded([bytes([b]) for read in stream for b in read])
    assert whole == bytewise
    assert whole  # something was read
