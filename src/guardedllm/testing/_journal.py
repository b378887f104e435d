"""The journal: every request the fake received, in arrival order.

The server thread appends while the test's thread reads, so the list sits behind a condition
variable; readers get copies. A request is recorded as soon as its body has been read, before
any scripted latency, hang or drop, so a test can see a request the client gave up on.

Recorded headers keep the credentials a client sent (tests assert on them), so the repr of a
``RecordedRequest`` masks every credential-bearing header and the ``key`` query parameter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from guardedllm.testing._script import Endpoint, Vendor

__all__ = ["Journal", "RecordedRequest"]

# Header and query names that carry API keys in the four vendor APIs.
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "x-goog-api-key"})
SECRET_QUERY = frozenset({"key"})


def _masked(secret_names: frozenset[str]) -> Any:
    def show(mapping: Mapping[str, str]) -> str:
        shown = {k: ("[redacted]" if k.lower() in secret_names else v) for k, v in mapping.items()}
        return repr(shown)

    return show


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as the fake received it.

    ``headers`` has lower-cased names (HTTP names are case-insensitive; a repeated header keeps
    its last value). ``json`` is the parsed body, or None when it was not valid JSON.
    ``vendor`` / ``endpoint`` / ``model`` are None for a path no vendor serves.
    ``received_at`` is ``time.monotonic()`` in the server's process.
    """

    method: str
    path: str
    query: Mapping[str, str] = attrs.field(repr=_masked(SECRET_QUERY))
    headers: Mapping[str, str] = attrs.field(repr=_masked(SECRET_HEADERS))
    json: Any = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    vendor: Vendor | None
    endpoint: Endpoint | None
    model: str | None
    stream: bool
    received_at: float = attrs.field(factory=time.monotonic)


class Journal:
    """Thread-safe, append-only (until ``clear``) list of recorded requests."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._entries: list[RecordedRequest] = []

    def append(self, entry: RecordedRequest) -> None:
        with self._changed:
            self._entries.append(entry)
            self._changed.notify_all()

    def snapshot(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._entries)

    def clear(self) -> None:
        with self._changed:
            self._entries.clear()

    def wait_for(self, count: int, timeout: float) -> list[RecordedRequest]:
        """Block until at least ``count`` requests are recorded; return them all.

        Raises ``TimeoutError`` after ``timeout`` seconds, saying how many arrived.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._entries) >= count, timeout):
                raise TimeoutError(
                    f"the fake received {len(self._entries)} of the {count} requests awaited "
                    f"within {timeout:g} s; check the client is pointed at this FakeProvider's "
                    "base_url, or wait longer."
                )
            return list(self._entries)
