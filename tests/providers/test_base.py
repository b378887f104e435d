"""What every wire format shares: the request builder (the same request httpx.Request builds)
and the reading of Retry-After."""

from __future__ import annotations

import math

import httpx
import pytest

from guardedllm.providers.base import Target, post_request, retry_after_seconds


def _target(base_url: str) -> Target:
    return Target(
        deployment="d", provider="p", kind="openai", base_url=base_url, model="m", api_key="k"
    )


@pytest.mark.parametrize(
    ("base_url", "path", "params", "headers"),
    [
        ("https://api.openai.com/v1", "chat/completions", None, [("content-type", "a/b")]),
        ("https://api.openai.com/v1/", "/chat/completions", None, []),
        ("http://127.0.0.1:8080", "v1/messages", None, [("X-Api-Key", "k"), ("x-api-key", "j")]),
        ("https://x.example/openai", "deployments/a%2Fb/chat", {"api-version": "2024"}, []),
        ("https://x.example", "v1beta/models/m:generateContent", {}, [("accept", "*/*")]),
        ("https://x.example", "p", {"alt": "sse", "q": "a b"}, [("accept", "text/event-stream")]),
        ("https://bücher.example/v1", "chat", None, []),
        # Headers httpx works out itself, set by a provider's config: httpx's rules apply.
        ("https://x.example", "p", None, [("Host", "other.example")]),
        ("https://x.example", "p", None, [("content-length", "3")]),
        ("https://x.example", "p", None, [("transfer-encoding", "chunked")]),
    ],
)
def test_post_request_builds_what_httpx_request_builds(
    base_url: str, path: str, params: dict[str, str] | None, headers: list[tuple[str, str]]
) -> None:
    target = _target(base_url)
    content = b'{"model":"m"}'
    built = post_request(target, path, params=params, headers=headers, content=content)
    expected = httpx.Request(
        "POST", target.url(path), params=params, headers=headers, content=content
    )
    assert built.url == expected.url
    assert built.headers.raw == expected.headers.raw
    assert built.content == expected.content == content
    assert built.method == "POST"
    assert b"".join(built.stream) == content


def test_a_header_httpx_cannot_encode_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        post_request(_target("https://x.example"), "p", headers=[("x-name", "é")], content=b"")


# --------------------------------------------------------------------------- Retry-After

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "7"}, 1.5),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:00 GMT"}, 0.0),  # passed: no wait
        # Faithful, however long: how much of it to honour is the guards' decision.
        ({"retry-after": "999999"}, 999_999.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, 253_402_300_799.0 - NOW),
        # Not a finite number of seconds: ignored, and the other header speaks.
        ({"retry-after-ms": "inf", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "-1", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-Infinity"}, None),
        ({"retry-after": "NaN"}, None),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "9" * 400}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "Fri, 31 Dec 99999 23:59:59 GMT"}, None),  # no datetime holds it
        ({"retry-after": "Mon, 32 Dec 2023 00:00:00 GMT"}, None),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 -0000"}, 253_402_300_799.0 - NOW),
        ({"retry-after": "later"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_the_vendors_wait_and_always_finite(
    headers: dict[str, str], seconds: float | None
) -> None:
    parsed = retry_after_seconds(httpx.Headers(headers), now=NOW)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds, abs=1e-6)
        assert math.isfinite(parsed)
