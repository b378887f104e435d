"""What a config may put into an HTTP request: header names and values, a base URL, an id or a
version that goes into a URL path.

Each is checked when the config is loaded, so that ``guardedllm check`` refuses what would
otherwise pass and then break the first call (a header httpx cannot encode, a base URL it
cannot parse) or send it somewhere else (``../`` in an id walks out of the vendor's path; a
query in the base URL carries a key into every repr and log line). Each check returns what is
wrong and what to do, or None: the loader reports it under its key, and the values'
validators raise it for values built in code. A message never quotes the value, which may be
a secret.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

import httpx

__all__ = [
    "KEY_ADVICE",
    "PATH_ID_KINDS",
    "base_url_problem",
    "header_name_problem",
    "header_value_problem",
    "path_id_problem",
]

KEY_ADVICE = (
    "put the key in an environment variable and name the variable in api_key_env "
    "(the value is not shown here)"
)

# RFC 9110 §5.1: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: a field value is visible ASCII, spaces and tabs. Bytes past 0x7F are obsolete
# there, and httpx encodes header values as ASCII: anything else fails the request being built.
_FIELD_VALUE = re.compile(r"[\x20-\x7e\t]*")
# RFC 3986 §2.3: the characters that mean nothing in a URL path but themselves.
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")

# Provider kinds whose model id is a segment of the request's URL path: an Azure deployment
# (/openai/deployments/ID/chat/completions) and a Gemini model (/v1beta/models/ID:...), which
# may name its own collection with a slash (tunedModels/ID).
PATH_ID_KINDS = {"azure-openai": False, "gemini": True}  # kind -> whether "/" may separate parts


def header_name_problem(name: str) -> str | None:
    if _TOKEN.fullmatch(name):
        return None
    return (
        "is not an HTTP header name: use only letters, digits and - (no colon, space or other "
        "punctuation), like X-Team"
    )


def header_value_problem(value: str) -> str | None:
    if _FIELD_VALUE.fullmatch(value):
        return None
    return (
        "must be printable ASCII text, without line breaks or other control characters: HTTP "
        "sends header values as ASCII; percent-encode or base64 anything else"
    )


def base_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a provider's base URL: scheme, host, port and path only."""
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        return (
            "must not hold spaces, line breaks or other control characters (one pasted "
            "along with it?): write the URL alone, like https://api.openai.com/v1"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it: a port that is no number raises
    except ValueError:
        return "is not a valid URL: write it like https://api.openai.com/v1"
    if "@" in parts.netloc:
        return f"holds credentials: {KEY_ADVICE}"
    if "?" in url or "#" in url:
        return (
            "must not have a query (?...) or fragment (#...), where a key would show in every "
            f"repr and log line: {KEY_ADVICE}; the provider adds the parameters its API needs"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host, like https://api.openai.com/v1"
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return "is not a URL httpx can send to: check the host name and port"
    return None


def path_id_problem(value: str, *, slashes: bool = False) -> str | None:
    """What is wrong with ``value`` as one segment of a URL path (several, split by "/", when
    ``slashes``): only unreserved characters, and no segment "." or ".." (which would climb
    out of the vendor's path)."""
    parts = value.split("/") if slashes else [value]
    if all(_UNRESERVED.fullmatch(part) and part not in (".", "..") for part in parts):
        return None
    between = ", with / between parts (like tunedModels/NAME)" if slashes else ""
    return (
        "goes into the URL path of every request, so it may hold only letters, digits and "
        f"- . _ ~{between}, and no part may be . or .. (nor / ? # %, spaces or control "
        "characters): write the vendor's id exactly as it spells it"
    )
