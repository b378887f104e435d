"""``redact``: the key an attempt was sent with, masked wherever an error of ours carries it."""

from __future__ import annotations

import json

import pytest

from guardedllm.errors import (
    BODY_EXCERPT_CHARS,
    ResponseFormatError,
    ServerError,
    StreamInterruptedError,
    error_for_status,
    redact,
)

KEY = "3f2a9c4be81d47f0a6c5d9e2b7f18c03"  # an Azure key: no shape scrub_secrets knows


def test_every_text_an_error_carries_is_masked() -> None:
    error = error_for_status(
        500, f"bad key {KEY}", code=KEY, request_id=f"req-{KEY}", body=f'{{"key": "{KEY}"}}'
    )
    assert redact(error, KEY) is error
    texts = [str(error), repr(error), error.body, error.code, error.request_id]
    assert [t for t in texts if t is not None and KEY[:8] in t] == []
    assert "bad key [redacted]" in str(error)
    assert error.body == '{"key": "[redacted]"}'


def test_a_key_cut_off_at_the_end_of_an_excerpt_is_masked() -> None:
    body = "x" * (BODY_EXCERPT_CHARS - 20) + KEY  # the excerpt keeps 20 of its 32 characters
    error = ResponseFormatError(f"garbage: {body[:200]!r}", excerpt=body)
    redact(error, KEY)
    assert error.excerpt.endswith("x[redacted]")
    assert KEY[:8] not in error.excerpt
    assert KEY[:8] not in str(error)


def test_the_errors_it_was_raised_from_are_masked_and_a_hidden_one_let_go() -> None:
    def parse() -> None:
        try:
            json.loads(f"<html>{KEY}</html>")
        except ValueError:
            raise ResponseFormatError(f"not JSON: {KEY}") from None

    with pytest.raises(ResponseFormatError) as caught:
        parse()
    inner = caught.value
    assert isinstance(inner.__context__, json.JSONDecodeError)
    outer = StreamInterruptedError("the stream broke")
    outer.__cause__ = inner
    redact(outer, KEY)
    assert outer.__cause__ is inner
    assert KEY not in str(inner)
    # The JSONDecodeError holds the whole body in ``doc``; raised ``from None``, it is let go.
    assert inner.__context__ is None


@pytest.mark.parametrize("secret", [None, "", "abc"])
def test_no_key_or_one_too_short_to_tell_masks_nothing(secret: str | None) -> None:
    error = ServerError("abc is not a key")
    redact(error, secret)
    assert str(error) == "abc is not a key"


def test_text_that_only_looks_like_the_start_of_the_key_under_eight_characters_stays() -> None:
    error = ServerError(f"id {KEY[:7]}-other and {KEY[:8]}")
    redact(error, KEY)
    assert str(error) == f"id {KEY[:7]}-other and [redacted]"
