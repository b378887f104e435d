"""Prompt tokens of a chat request, counted the way the OpenAI API reports ``prompt_tokens``.

The rule, from the OpenAI cookbook "How to count tokens with tiktoken" (section 6, for gpt-3.5-
turbo-0125, gpt-4, gpt-4o and gpt-4o-mini): every message costs 3 tokens of framing
(``<|start|>{role}<|message|>...<|end|>``) plus the tokens of each of its string values (role,
content, name), plus 1 more when it has a ``name``; the reply is primed with 3 more
(``<|start|>assistant<|message|>``). The cookbook checked this against the API's own count.

Beyond that rule: text content parts count as text; images follow the tile formula in
``_images``; audio, video and file parts an upper bound from ``_media``, and a part that cannot
be read (a ``file_id``, an unknown type) is bounded by the context window (``fills_window``);
tool definitions the cookbook's fitted formula in ``_tools``; tool calls in assistant messages
count their name and arguments. Whatever is approximated is said in ``notes``, and
``exact`` is True exactly when there are no notes.

User text is encoded with ``encode_ordinary``: a message containing ``<|endoftext|>`` is counted
as the plain text it is (the API treats it so) instead of raising.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import tiktoken

from guardedllm.errors import InvalidRequestError
from guardedllm.estimate._images import (
    GPT_4O_IMAGE_RATES,
    ImageTokenRates,
    data_url_image_size,
    image_tokens,
    max_image_tokens,
)
from guardedllm.estimate._media import (
    MEDIA_RATES_CEILING,
    MediaBound,
    MediaTokenRates,
    audio_part_bound,
    file_part_bound,
)
from guardedllm.estimate._tools import count_tool_tokens, tool_formula_for

__all__ = ["TokenCount", "count_chat_tokens"]

_Encode = Callable[[str], list[int]]

_PER_MESSAGE: Final = 3  # <|start|>{role}<|message|> ... <|end|>
_PER_NAME: Final = 1  # a named message costs one more token than its name's text
_REPLY_PRIMING: Final = 3  # <|start|>assistant<|message|>
# Message keys whose string values the cookbook's rule covers exactly.
_EXACT_KEYS: Final = frozenset({"role", "content", "name"})
# The special token that separates texts counted in one call, and the bytes of one token id in
# tiktoken's buffer of them (uint32).
_SEPARATOR: Final = "<|endoftext|>"
_ALLOWED: Final = frozenset({_SEPARATOR})
_TOKEN_BYTES: Final = 4

# Token counts of the standard roles per encoding name, filled on first sight. A role is encoded
# in every message and each tiktoken call has a fixed cost of about a microsecond, so this keeps
# counting close to one bare encode of the same text. Only these roles are kept: the dicts stay
# tiny whatever callers send. Keyed by encoding name, which identifies an encoding in tiktoken.
# Unlocked: a racing write stores the same value.
_CACHED_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_role_tokens: dict[str, dict[str, int]] = {}

_NOTE_TOOLS: Final = (
    "tool definitions counted with the OpenAI cookbook's fitted formula (nested schemas are "
    "not modelled)"
)
_NOTE_TOOL_CALLS: Final = (
    "tool calls in messages: name and arguments counted, their framing approximated"
)
_NOTE_AUTO_DETAIL: Final = "image detail 'auto' counted as 'high' (the worst case)"


@attrs.frozen(kw_only=True)
class TokenCount:
    """Prompt tokens of a request; ``exact`` is True exactly when ``notes`` is empty.

    ``notes`` says what was approximated, one short sentence each, e.g. an image whose size is
    unknown counted at its worst case. ``fills_window`` is True when a part could not be read
    at all (an OpenAI ``file_id``, a part type not documented): ``tokens`` leaves it out, and
    an estimate counts the input as all of the context window the output leaves.
    """

    tokens: int = attrs.field(validator=attrs.validators.ge(0))
    exact: bool
    notes: tuple[str, ...] = ()
    fills_window: bool = False


@attrs.frozen
class _Rates:
    """The rates a count prices images and media at."""

    image: ImageTokenRates
    media: MediaTokenRates


def count_chat_tokens(
    messages: Sequence[Mapping[str, Any]],
    *,
    encoding: tiktoken.Encoding,
    tools: Sequence[Mapping[str, Any]] | None = None,
    image_rates: ImageTokenRates = GPT_4O_IMAGE_RATES,
    media_rates: MediaTokenRates = MEDIA_RATES_CEILING,
) -> TokenCount:
    """Prompt tokens of OpenAI-shaped ``messages`` (and ``tools``) under ``encoding``; audio,
    video and file parts are bounded at ``media_rates`` (by default the largest of the vendors').

    Raises ``InvalidRequestError`` for a message that is not an OpenAI chat message.
    """
    rates = _rates(image_rates, media_rates)
    counter = _direct_counter(encoding)
    if counter is not None:
        try:
            return _count(messages, counter, encoding.name, tools, rates)
        except UnicodeEncodeError:
            # Text tiktoken's wrapper repairs first (lone surrogates) makes its encoder raise:
            # the count starts over through the wrapper (counting is pure: nothing is counted
            # twice).
            pass
    return _count(messages, _Counter.wrapped(encoding), encoding.name, tools, rates)


@attrs.frozen
class _Counter:
    """How one count encodes: ``encode`` for one text, ``total`` for the texts of a request.

    A count gathers the request's texts and counts them in one call to tiktoken's encoder:
    every call has a fixed cost (a message's text is short, and a chat request has many), and
    a count needs no list of token ids, only its length.
    """

    encode: _Encode
    total: Callable[[list[str]], int]

    @staticmethod
    def direct(encoding: tiktoken.Encoding) -> _Counter | None:
        """tiktoken's encoder without its Python wrapper (None: this tiktoken lacks it).

        The texts are joined by a special token the encoder is allowed to see: it encodes the
        text between special tokens piece by piece, exactly as separate calls would, so the
        tokens of the join are those of the texts plus one per separator. The token ids come
        back as a buffer (what tiktoken's ``encode_to_numpy`` uses), not as a list of ints
        nobody reads. When a text holds the separator itself, each text is counted alone.
        """
        core = getattr(encoding, "_core_bpe", None)
        encode = getattr(core, "encode_ordinary", None)
        to_buffer = getattr(core, "encode_to_tiktoken_buffer", None)
        if encode is None:
            return None
        if to_buffer is None or _SEPARATOR not in getattr(encoding, "_special_tokens", ()):
            return _Counter(encode, _one_by_one(encode))

        def total(texts: list[str]) -> int:
            if len(texts) < 2:
                return len(encode(texts[0])) if texts else 0
            joined = _SEPARATOR.join(texts)
            separators = len(texts) - 1
            if joined.count(_SEPARATOR) != separators:  # a text holds the separator
                return sum(len(encode(text)) for text in texts)
            return memoryview(to_buffer(joined, _ALLOWED)).nbytes // _TOKEN_BYTES - separators

        return _Counter(encode, total)

    @staticmethod
    def wrapped(encoding: tiktoken.Encoding) -> _Counter:
        """Through tiktoken's wrapper, one call per text: it repairs what its encoder refuses."""
        return _Counter(encoding.encode_ordinary, _one_by_one(encoding.encode_ordinary))


# A count's counter and rates, made once per encoding and pair of rates (about 2 us a count
# otherwise). Bounded: a caller may pass encodings and rates of its own.
_direct_counter = functools.lru_cache(maxsize=32)(_Counter.direct)
_rates = functools.lru_cache(maxsize=64)(_Rates)


def _one_by_one(encode: _Encode) -> Callable[[list[str]], int]:
    def total(texts: list[str]) -> int:
        return sum(len(encode(text)) for text in texts)

    return total


def _count(
    messages: Sequence[Mapping[str, Any]],
    counter: _Counter,
    encoding_name: str,
    tools: Sequence[Mapping[str, Any]] | None,
    rates: _Rates,
) -> TokenCount:
    roles = _role_tokens.get(encoding_name)
    if roles is None:
        roles = _role_tokens.setdefault(encoding_name, {})
    notes: list[str] = []
    texts: list[str] = []  # counted together at the end
    unread: list[MediaBound] = []  # parts only the context window bounds
    total = _REPLY_PRIMING
    for index, message in enumerate(messages):
        if type(message) is not dict and not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"messages[{index}] is a {type(message).__name__}, not a message: pass each "
                'message as a mapping such as {"role": "user", "content": "..."}.'
            )
        total += _PER_MESSAGE
        for key, value in message.items():
            if type(value) is str or isinstance(value, str):
                if key == "role":
                    cached = roles.get(value)
                    if cached is None:
                        cached = len(counter.encode(value))
                        if value in _CACHED_ROLES:
                            roles[value] = cached
                    total += cached
                    continue
                texts.append(value)
                if key == "name":
                    total += _PER_NAME
                elif key not in _EXACT_KEYS:
                    _add(notes, f"message field {key!r} counted as text; its framing approximated")
            elif value is None:
                continue
            elif key == "content":
                total += _content_tokens(value, index, texts, rates, notes=notes, unread=unread)
            elif key == "tool_calls":
                _tool_calls_texts(value, index, texts)
                _add(notes, _NOTE_TOOL_CALLS)
            elif key == "function_call" and isinstance(value, Mapping):
                _function_texts(value, texts)
                _add(notes, _NOTE_TOOL_CALLS)
            else:
                _add(notes, f"message field {key!r} ({type(value).__name__}) not counted")
    total += counter.total(texts)
    if tools:
        total += count_tool_tokens(
            tools, encode=counter.encode, formula=tool_formula_for(encoding_name)
        )
        _add(notes, _NOTE_TOOLS)
    return TokenCount(tokens=total, exact=not notes, notes=tuple(notes), fills_window=bool(unread))


def _add(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def _content_tokens(
    content: object,
    index: int,
    texts: list[str],
    rates: _Rates,
    *,
    notes: list[str],
    unread: list[MediaBound],
) -> int:
    """The tokens of a list of content parts that are not text; its texts go to ``texts``."""
    if not isinstance(content, Sequence) or isinstance(content, (bytes, bytearray)):
        raise InvalidRequestError(
            f"messages[{index}].content is a {type(content).__name__}: pass a string or a list "
            'of content parts such as {"type": "text", "text": "..."}.'
        )
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(_part_str(part, "text", index))
        elif kind == "refusal":
            texts.append(_part_str(part, "refusal", index))
        elif kind == "image_url":
            total += _image_part_tokens(part, index, rates.image, notes)
        elif isinstance(part, str):
            texts.append(part)  # some SDKs allow bare strings in a parts list
        elif kind is None:
            raise InvalidRequestError(
                f"messages[{index}].content holds a part without a type: give each part a "
                '"type" ("text", "image_url", ...).'
            )
        else:
            if kind == "input_audio":
                bound = audio_part_bound(part, rates.media)
            elif kind == "file":
                bound = file_part_bound(part, rates.media)
            else:
                bound = MediaBound(
                    rest_of_window=True,
                    note=f"content part type {kind!r} cannot be counted: counted as all of the "
                    "context window the rest of the request leaves",
                )
            _add(notes, bound.note)
            if bound.rest_of_window:
                unread.append(bound)
            total += bound.tokens
    return total


def _part_str(part: Mapping[str, Any], field: str, index: int) -> str:
    value = part.get(field)
    if not isinstance(value, str):
        raise InvalidRequestError(
            f'messages[{index}].content has a "{part.get("type")}" part whose "{field}" is '
            f"{type(value).__name__}, not a string: put the text in {field!r}."
        )
    return value


def _image_part_tokens(
    part: Mapping[str, Any], index: int, rates: ImageTokenRates, notes: list[str]
) -> int:
    image = part.get("image_url")
    if isinstance(image, str):
        url, detail = image, "auto"
    elif isinstance(image, Mapping) and isinstance(image.get("url"), str):
        url, detail = image["url"], image.get("detail") or "auto"
    else:
        raise InvalidRequestError(
            f'messages[{index}].content has an "image_url" part without a url: pass '
            '{"type": "image_url", "image_url": {"url": "https://... or data:..."}}.'
        )
    if detail == "low":
        return rates.base
    if detail not in ("high", "auto"):
        raise InvalidRequestError(
            f"messages[{index}] has an image with detail {detail!r}: use 'low', 'high' or 'auto'."
        )
    if detail == "auto":
        _add(notes, _NOTE_AUTO_DETAIL)
    size = data_url_image_size(url) if url.startswith("data:") else None
    if size is None:
        worst = max_image_tokens(detail, rates)
        _add(notes, f"image size unknown (not read from its URL): counted at the most, {worst}")
        return worst
    return image_tokens(size[0], size[1], detail, rates)


def _tool_calls_texts(tool_calls: object, index: int, texts: list[str]) -> None:
    if not isinstance(tool_calls, Sequence):
        raise InvalidRequestError(
            f"messages[{index}].tool_calls is a {type(tool_calls).__name__}: pass a list of "
            '{"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}.'
        )
    for call in tool_calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            _function_texts(function, texts)


def _function_texts(function: Mapping[str, Any], texts: list[str]) -> None:
    for field in ("name", "arguments"):
        value = function.get(field)
        if isinstance(value, str):
            texts.append(value)
