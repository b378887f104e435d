"""What a vendor's response headers say about its rate limits: parsed, never trusted blindly.

OpenAI (and Azure OpenAI) send, per response::

    x-ratelimit-limit-requests: 60         x-ratelimit-limit-tokens: 150000
    x-ratelimit-remaining-requests: 59     x-ratelimit-remaining-tokens: 149984
    x-ratelimit-reset-requests: 1s         x-ratelimit-reset-tokens: 6m0s

where a reset is a Go duration ("20ms", "1s", "6m0s", "1h2m3.5s"): the time until the limit is
back to its initial (full) state. Anthropic sends::

    anthropic-ratelimit-requests-limit: 1000
    anthropic-ratelimit-requests-remaining: 999
    anthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z
    anthropic-ratelimit-tokens-limit / -remaining / -reset
    anthropic-ratelimit-input-tokens-* and anthropic-ratelimit-output-tokens-*

where a reset is an RFC 3339 time at which the limit is fully replenished. Anthropic limits input
and output tokens per minute separately; its ``tokens-*`` headers report them together (in a
recorded response, limit 96000 = 80000 input + 16000 output), which is what our one tokens
bucket — input plus reserved output — counts. When only the input and output families come,
they are added up the same way.

A header that is missing or unreadable is ignored: a vendor's quirk must never fail a call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import attrs
import httpx

__all__ = ["VendorLimit", "VendorLimits", "parse_go_duration", "parse_rfc3339", "read_limits"]


@attrs.frozen(kw_only=True)
class VendorLimit:
    """One vendor limit as a response reported it. Any part may be unknown (None).
    ``reset_s`` is seconds from the response until the limit is full again."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None


@attrs.frozen(kw_only=True)
class VendorLimits:
    """The request and token limits of one response (None: not reported). ``input_tokens`` and
    ``output_tokens`` are Anthropic's separate families, kept for telemetry; ``tokens`` is what
    the tokens bucket learns from."""

    requests: VendorLimit | None = None
    tokens: VendorLimit | None = None
    input_tokens: VendorLimit | None = None
    output_tokens: VendorLimit | None = None


_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # Greek mu, which Go also accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string ("20ms", "6m0s", "1h2m3.5s", "0"), or None."""
    text = text.strip()
    if text in {"0", "+0", "-0"}:
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        part = _GO_PART.match(text, position)
        if part is None:
            return None
        total += float(part.group(1)) * _GO_UNIT_S[part.group(2)]
        position = part.end()
    return total if position and math.isfinite(total) else None


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_rfc3339(text: str) -> float | None:
    """Unix time of an RFC 3339 timestamp ("2025-08-21T12:40:59Z", with optional fraction and
    offset), or None. Written out because ``fromisoformat`` before Python 3.11 takes neither
    "Z" nor a fraction of other than 3 or 6 digits."""
    found = _RFC3339.fullmatch(text.strip())
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    fraction = float(found.group(7)) if found.group(7) else 0.0
    zone = found.group(8)
    offset = timedelta(0)
    if zone not in {"Z", "z"}:
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        moment = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone.utc)
    except ValueError:
        return None
    # A leap second (":60") reads as the last second of its minute.
    return (moment - offset).timestamp() + fraction


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _limit(
    headers: Mapping[str, str], limit: str, remaining: str, reset: str, *, wall_now: float | None
) -> VendorLimit | None:
    """The limit under three header names; a reset is a Go duration when ``wall_now`` is None,
    an RFC 3339 time otherwise."""
    found = VendorLimit(
        limit=_count(headers.get(limit)),
        remaining=_count(headers.get(remaining)),
        reset_s=_reset(headers.get(reset), wall_now),
    )
    return None if found == VendorLimit() else found


def _reset(text: str | None, wall_now: float | None) -> float | None:
    if text is None:
        return None
    if wall_now is None:
        return parse_go_duration(text)
    at = parse_rfc3339(text)
    return None if at is None else max(0.0, at - wall_now)


def _together(first: VendorLimit | None, second: VendorLimit | None) -> VendorLimit | None:
    """Two limits counted as one: limits and remainders add up, the later reset holds."""
    if first is None or second is None:
        return None

    def added(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else a + b

    resets = [r for r in (first.reset_s, second.reset_s) if r is not None]
    return VendorLimit(
        limit=added(first.limit, second.limit),
        remaining=added(first.remaining, second.remaining),
        reset_s=max(resets) if resets else None,
    )


_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_NONE = VendorLimits()


def read_limits(headers: Mapping[str, str], *, wall_now: float) -> VendorLimits:
    """The rate limits a response's ``headers`` report, OpenAI's or Anthropic's (any case).
    ``wall_now`` is the Unix time, for Anthropic's absolute reset times."""
    # Most answers carry no rate-limit header at all: their names alone are looked at (httpx's
    # keys() gives them lowercased without decoding the values), and only such headers twice.
    names = headers.keys()
    if isinstance(headers, httpx.Headers) and not any(name.startswith(_PREFIXES) for name in names):
        return _NONE
    lower = {
        name: value
        for name, value in ((name.lower(), value) for name, value in headers.items())
        if name.startswith(_PREFIXES)
    }
    if not lower:
        return _NONE
    if any(name.startswith("anthropic-ratelimit-") for name in lower):
        prefix = "anthropic-ratelimit-"

        def family(name: str) -> VendorLimit | None:
            return _limit(
                lower,
                f"{prefix}{name}-limit",
                f"{prefix}{name}-remaining",
                f"{prefix}{name}-reset",
                wall_now=wall_now,
            )

        input_tokens, output_tokens = family("input-tokens"), family("output-tokens")
        return VendorLimits(
            requests=family("requests"),
            tokens=family("tokens") or _together(input_tokens, output_tokens),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
    return VendorLimits(
        requests=_limit(
            lower,
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            wall_now=None,
        ),
        tokens=_limit(
            lower,
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
            wall_now=None,
        ),
    )
