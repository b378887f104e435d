"""The rules a shared store's URL must follow, with no redis-py in sight: the config loader
checks ``[state] url`` with them (``guardedllm check`` runs where redis-py may not be
installed), and ``RedisBackend.from_url`` with them again before redis-py reads the URL.

A URL never holds a password: it would sit in config files, reprs and logs. The password comes
from the environment variable ``password_env`` names. Messages never echo the URL, which may
hold the very secret they are about.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

__all__ = ["SCHEMES", "url_problems"]

SCHEMES = ("redis", "rediss", "unix")


def url_problems(url: str) -> list[str]:
    """What is wrong with ``url`` as a store's address, each as a message for ``state.url``
    (empty when nothing is)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is no number
    except ValueError as error:
        return [f"is not a valid URL: {error}"]
    problems: list[str] = []
    scheme = parts.scheme.lower()
    # redis-py wants the "://" too: "redis:host" would pass urlsplit as the redis scheme.
    if scheme not in SCHEMES or not url.lower().startswith(f"{scheme}://"):
        problems.append(
            f"must start with redis://, rediss:// or unix://; got scheme {parts.scheme!r}"
        )
        scheme = ""  # what follows the scheme means nothing yet
    if parts.password is not None or "password" in parse_qs(parts.query):
        problems.append(
            "holds a password, which would end up in config files and logs; remove it from "
            "the URL, put it in an environment variable and name that variable in password_env"
        )
    if scheme == "unix" and not parts.path:
        problems.append("names no socket: write unix:///path/to/redis.sock?db=0")
    db_written = parse_qs(parts.query).get("db", []) if scheme else []
    path = parts.path.strip("/") if scheme in ("redis", "rediss") else ""
    # redis-py reads a path that is no number as database 0 without a word: refuse it instead.
    if any(not db.isdigit() for db in db_written) or (path and not path.isdigit()):
        problems.append(
            "names a database that is no number: write its number as the path "
            "(redis://host:6379/0) or as ?db=0"
        )
    return problems
