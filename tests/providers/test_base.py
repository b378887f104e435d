"""The request builder every wire format shares: the same request httpx.Request builds."""

from __future__ import annotations

import httpx
import pytest

from guardedllm.providers.base import Target, post_request


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
