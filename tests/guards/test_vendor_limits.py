"""Reading vendors' rate-limit headers: Go durations, RFC 3339 times, real header samples."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm.guards import VendorLimit, VendorLimits
from guardedllm.guards._vendor_limits import parse_go_duration, parse_rfc3339, read_limits

# The sample table of OpenAI's "Rate limits" guide ("Rate limits in headers").
OPENAI_DOCS_SAMPLE = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
}

# Headers of a real chat completion posted on the OpenAI developer forum ("How to get rate limit
# reset time for response API?"), with the usage-based variants OpenAI also sends.
OPENAI_FORUM_SAMPLE = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-limit-tokens": "160000",
    "x-ratelimit-limit-tokens_usage_based": "160000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-remaining-tokens": "159976",
    "x-ratelimit-remaining-tokens_usage_based": "159976",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-reset-tokens": "9ms",
    "x-ratelimit-reset-tokens_usage_based": "9ms",
}

# A recorded Anthropic /v1/messages response (the tidyllm R package's test fixtures), sent at
# "Thu, 21 Aug 2025 12:41:00 GMT". Its tokens-* family is input plus output (80000 + 16000).
ANTHROPIC_RECORDED = {
    "date": "Thu, 21 Aug 2025 12:41:00 GMT",
    "anthropic-ratelimit-input-tokens-limit": "80000",
    "anthropic-ratelimit-input-tokens-remaining": "80000",
    "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-output-tokens-limit": "16000",
    "anthropic-ratelimit-output-tokens-remaining": "16000",
    "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:41:00Z",
    "anthropic-ratelimit-requests-limit": "1000",
    "anthropic-ratelimit-requests-remaining": "999",
    "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-tokens-limit": "96000",
    "anthropic-ratelimit-tokens-remaining": "96000",
    "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:59Z",
    "request-id": "req_011CSLsW7mFqvHHnzrKdKjAE",
}
ANTHROPIC_SENT_AT = datetime(2025, 8, 21, 12, 41, 0, tzinfo=timezone.utc).timestamp()


# --------------------------------------------------------------------------- Go durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("12ms", 0.012),
        ("1h2m3.5s", 3723.5),
        ("7.66s", 7.66),
        ("0s", 0.0),
        ("0", 0.0),
        ("1m30s", 90.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("3ns", 3e-9),
        (" 2s ", 2.0),
    ],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    parsed = parse_go_duration(text)
    assert parsed is not None
    assert parsed == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1", "1x", "1s2", "-1s", "1 s", "ms", "1.2.3s", "abc"])
def test_go_durations_reject_garbage(text: str) -> None:
    assert parse_go_duration(text) is None


@given(
    hours=st.integers(0, 48),
    minutes=st.integers(0, 59),
    millis=st.integers(0, 59_999),
)
def test_go_durations_round_trip(hours: int, minutes: int, millis: int) -> None:
    """Go formats a duration as [Nh][Nm]N.NNNs (or Nms under a second); each reads back."""
    seconds = millis / 1000
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    text += f"{seconds:g}s"
    expected = hours * 3600 + minutes * 60 + seconds
    assert parse_go_duration(text) == pytest.approx(expected)


@given(st.text(max_size=12))
def test_go_durations_never_raise(text: str) -> None:
    parsed = parse_go_duration(text)
    assert parsed is None or (math.isfinite(parsed) and parsed >= 0)


# --------------------------------------------------------------------------- RFC 3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-08-21T12:40:59Z", datetime(2025, 8, 21, 12, 40, 59, tzinfo=timezone.utc)),
        ("2025-08-21t12:40:59z", datetime(2025, 8, 21, 12, 40, 59, tzinfo=timezone.utc)),
        (
            "2025-08-21T12:40:59.25Z",
            datetime(2025, 8, 21, 12, 40, 59, 250000, tzinfo=timezone.utc),
        ),
        (
            "2025-08-21T14:40:59+02:00",
            datetime(2025, 8, 21, 12, 40, 59, tzinfo=timezone.utc),
        ),
        (
            "2025-08-21T07:10:59-05:30",
            datetime(2025, 8, 21, 12, 40, 59, tzinfo=timezone.utc),
        ),
    ],
)
def test_rfc3339_parses(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == pytest.approx(expected.timestamp())


@pytest.mark.parametrize(
    "text", ["", "2025-08-21", "2025-08-21T12:40:59", "2025-13-01T00:00:00Z", "yesterday"]
)
def test_rfc3339_rejects_garbage(text: str) -> None:
    assert parse_rfc3339(text) is None


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(timezone.utc),
    ),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timedelta(minutes=m)),
)
def test_rfc3339_round_trip(moment: datetime, offset: timedelta) -> None:
    shown = moment.astimezone(timezone(offset))
    assert parse_rfc3339(shown.isoformat()) == pytest.approx(moment.timestamp(), abs=1e-6)


# --------------------------------------------------------------------------- samples


def test_openai_docs_sample() -> None:
    limits = read_limits(OPENAI_DOCS_SAMPLE, wall_now=0.0)
    assert limits == VendorLimits(
        requests=VendorLimit(limit=60, remaining=59, reset_s=1.0),
        tokens=VendorLimit(limit=150000, remaining=149984, reset_s=360.0),
    )


def test_openai_forum_sample_through_httpx_headers() -> None:
    """httpx.Headers is what the engine has; its names may come in any case."""
    headers = httpx.Headers({name.upper(): value for name, value in OPENAI_FORUM_SAMPLE.items()})
    limits = read_limits(headers, wall_now=0.0)
    assert limits.requests is not None
    assert limits.tokens is not None
    assert (limits.requests.limit, limits.requests.remaining) == (5000, 4999)
    assert limits.requests.reset_s == pytest.approx(0.012)
    assert (limits.tokens.limit, limits.tokens.remaining) == (160000, 159976)
    assert limits.tokens.reset_s == pytest.approx(0.009)


def test_anthropic_recorded_response() -> None:
    limits = read_limits(ANTHROPIC_RECORDED, wall_now=ANTHROPIC_SENT_AT - 5)
    assert limits.requests == VendorLimit(limit=1000, remaining=999, reset_s=4.0)
    assert limits.tokens == VendorLimit(limit=96000, remaining=96000, reset_s=4.0)
    assert limits.input_tokens == VendorLimit(limit=80000, remaining=80000, reset_s=4.0)
    assert limits.output_tokens == VendorLimit(limit=16000, remaining=16000, reset_s=5.0)


def test_anthropic_reset_already_past_reads_as_zero() -> None:
    """The recorded reset times are a second before the response's Date: nothing to wait."""
    limits = read_limits(ANTHROPIC_RECORDED, wall_now=ANTHROPIC_SENT_AT)
    assert limits.requests is not None
    assert limits.requests.reset_s == 0.0


def test_anthropic_without_combined_tokens_adds_input_and_output() -> None:
    headers = {
        name: value
        for name, value in ANTHROPIC_RECORDED.items()
        if not name.startswith("anthropic-ratelimit-tokens-")
    }
    limits = read_limits(headers, wall_now=ANTHROPIC_SENT_AT - 5)
    assert limits.tokens == VendorLimit(limit=96000, remaining=96000, reset_s=5.0)


def test_azure_sends_only_remaining_counts() -> None:
    limits = read_limits(
        {"x-ratelimit-remaining-requests": "119", "x-ratelimit-remaining-tokens": "119000"},
        wall_now=0.0,
    )
    assert limits.requests == VendorLimit(remaining=119)
    assert limits.tokens == VendorLimit(remaining=119000)


def test_unreadable_or_missing_headers_are_ignored() -> None:
    assert read_limits({"content-type": "application/json"}, wall_now=0.0) == VendorLimits()
    limits = read_limits(
        {
            "x-ratelimit-limit-requests": "many",
            "x-ratelimit-remaining-requests": "-3",
            "x-ratelimit-reset-requests": "soon",
            "x-ratelimit-remaining-tokens": "10",
        },
        wall_now=0.0,
    )
    assert limits == VendorLimits(tokens=VendorLimit(remaining=10))
