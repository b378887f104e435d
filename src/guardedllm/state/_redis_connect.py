"""Reaching Redis: the URL rules (``_url``: no password in it, a password comes from the
environment variable ``password_env`` names), the store's description for reprs and messages
(address and key prefix, never a password), and redis-py's exceptions turned into
``StateError``.

Shared by the sync and async backends; imports redis-py, so it loads only with them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import attrs
import redis.connection
import redis.exceptions

from guardedllm import defaults
from guardedllm.errors import ConfigError, ConfigProblem, StateError
from guardedllm.state._url import url_problems

__all__ = ["Connection", "Failures", "connection", "describe"]


@attrs.frozen(kw_only=True)
class Connection:
    """What ``from_url`` hands redis-py: the URL (checked to hold no password), the password
    read from the environment, and the timeout."""

    url: str
    password: str | None = attrs.field(repr=False)
    timeout_s: float

    @property
    def pool_options(self) -> dict[str, Any]:
        """Options of a redis-py ``BlockingConnectionPool`` (sync or async) for this store."""
        return {
            "password": self.password,
            "max_connections": defaults.STATE_MAX_CONNECTIONS,
            "timeout": self.timeout_s,  # waiting for a free connection
            "socket_connect_timeout": self.timeout_s,
            "socket_timeout": self.timeout_s,
        }


def connection(url: str, *, password_env: str | None, timeout_s: float) -> Connection:
    """Check ``from_url``'s arguments, reporting every problem at once as a ``ConfigError``
    under the ``[state]`` key it concerns; read the password from ``password_env``."""
    problems = [ConfigProblem(key="state.url", message=m) for m in url_problems(url)]
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            problems.append(
                ConfigProblem(
                    key="state.password_env",
                    message=f"the environment variable {password_env!r} is not set; set it to "
                    "the Redis password, or drop password_env for a Redis without one",
                )
            )
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        problems.append(
            ConfigProblem(
                key="state.timeout_s", message=f"must be a number of seconds > 0; got {timeout_s!r}"
            )
        )
    if not problems:
        try:  # what redis-py itself refuses (a db or an option that is no number, ...)
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]  # untyped upstream
        except ValueError as error:
            problems.append(ConfigProblem(key="state.url", message=str(error)))
    if problems:
        raise ConfigError(problems)
    return Connection(url=url, password=password, timeout_s=timeout_s)


def describe(connection_kwargs: Mapping[str, Any], connection_class: type, prefix: str) -> str:
    """The store as reprs and messages show it: ``redis://host:port/db`` (or ``rediss://``,
    ``unix://path?db=N``) and the key prefix; never a password."""
    db = connection_kwargs.get("db", 0)
    if "path" in connection_kwargs:
        where = f"unix://{connection_kwargs['path']}?db={db}"
    else:
        scheme = "rediss" if "SSL" in connection_class.__name__ else "redis"
        host = connection_kwargs.get("host", "localhost")
        port = connection_kwargs.get("port", 6379)
        where = f"{scheme}://{host}:{port}/{db}"
    return f"{where}, key_prefix={prefix!r}"


# redis-py's exception class -> what went wrong and what to do; the most specific class in an
# exception's MRO wins.
_ADVICE: dict[type[Exception], str] = {
    redis.exceptions.AuthenticationError: "refused the credentials; check the username in the "
    "URL and the password in the variable password_env names",
    redis.exceptions.NoPermissionError: "refused the operation for lack of permission; grant "
    "the ACL user EVALSHA, SCRIPT, TIME and PING on keys under the prefix",
    redis.exceptions.TimeoutError: "did not answer in time; check the store's load and the "
    "network, or raise timeout_s",
    redis.exceptions.ConnectionError: "could not be reached, or dropped the connection; check "
    "that Redis runs at that address and that this host can reach it",
    redis.exceptions.ResponseError: "refused the operation; check that the store is a "
    "writable Redis primary (not a replica) with memory to spare",
    redis.exceptions.RedisError: "failed; check the store's logs",
}


def state_error(error: redis.exceptions.RedisError, store: str) -> StateError:
    advice = next(_ADVICE[cls] for cls in type(error).__mro__ if cls in _ADVICE)
    return StateError(
        f"state store {store}: {advice} ({type(error).__name__}: {error})", store=store
    )


class Failures:
    """A context in which redis-py's exceptions surface as ``StateError`` (chained to the
    original). A plain ``with`` serves both backends: it may wrap an ``await``."""

    __slots__ = ("store",)

    def __init__(self, store: str) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, redis.exceptions.RedisError):
            raise state_error(error, self.store) from error
