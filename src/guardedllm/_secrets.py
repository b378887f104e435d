"""Masking API keys in text: every key shape we know (``scrub_secrets``), and one key of any
shape, a cut-off head of it included (``masked``). ``errors.redact`` applies the second to
every text an error carries; wire formats and telemetry apply the first to vendor bodies."""

from __future__ import annotations

import re

__all__ = ["masked", "scrub_secrets"]

# Shapes of API keys we know (OpenAI sk-..., Anthropic sk-ant-..., Google AIza...) and bearer
# headers. Anything in a vendor body or a message that looks like one is masked.
_SECRET_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)


def scrub_secrets(text: str) -> str:
    """Mask anything in ``text`` that looks like an API key."""
    return _SECRET_PATTERNS.sub("[redacted]", text)


# A key's leading part this long is masked too, wherever it stands: a body excerpt cut short
# may end inside a key, and most of a key is nearly as good as all of it.
_KEY_HEAD_CHARS = 8


def masked(text: str, secret: str) -> str:
    """``text`` with each run that starts like ``secret`` (its first ``_KEY_HEAD_CHARS``, or
    all of a shorter one) and follows it as far as it goes replaced by ``[redacted]``."""
    head = secret[:_KEY_HEAD_CHARS]
    start = text.find(head)
    if start == -1:
        return text
    parts: list[str] = []
    done = 0
    while start != -1:
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        parts += (text[done:start], "[redacted]")
        done = end
        start = text.find(head, end)
    parts.append(text[done:])
    return "".join(parts)
