"""``Recorder``: what the engine hands a call's record to, and what decides which calls are kept.

Sampling is decided before anything is built: a call left out of the sample costs one hash (or
one random draw) and no record. The sample is sticky by the call's routing key (the same
``Policy.route_key`` or request ``user`` that keeps a split's arm): position(``"record"``, key)
below ``sample``, so a user's calls are all kept or all left out, in every process and across
restarts, whichever arm they are on. The salt is the recorder's own, not a split's, so the sample
takes the same share of each arm. A call without a key draws from the engine's random source.

Token counts: a record holds the prompt's count for every tokenizer the call's plan counted
(the answering deployment's, or the first one's when none answered; a rule on input size adds
o200k_base), which costs nothing more, since the plan counted them already. Counting with every
other tokenizer of the registry as well was measured: 12 us per tokenizer for the overhead
benchmark's two short messages, and 250 us (o200k_base) to 520 us (cl100k_base) for a
1,000-token prompt, more than a whole guarded call's own CPU (about 200 us): recording would
then cost more than the call, on every recorded call, for a count that ``simulate`` can make
itself offline from ``content="full"`` records, or convert (marked inexact) from the count
recorded. So it is not done on the call's path.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import IO, ParamSpec

from guardedllm import defaults
from guardedllm.record._writer import DropReason, Writer, open_new
from guardedllm.registry import RecordConfig
from guardedllm.routing._sticky import position

__all__ = ["Recorder"]

_SALT = "record"

_P = ParamSpec("_P")

# Record ids need no secrecy, only to be unique: 64 random bits from a generator seeded by the
# OS, not the engine's random source (which tests pin, and which would then repeat ids).
_ids = _random.Random()


class Recorder:
    """Writes records of calls (docs/record-format.md) as ``config`` says, through a writer
    thread behind a bounded queue. ``Client(record=RecordConfig(...))`` builds one; pass one of
    your own for a queue of another size (``queue_size``) or another way to open files
    (``opener``, for tests). ``close`` (the client's ``close`` / ``aclose``) writes what is
    queued; ``written`` and ``dropped`` (by reason: "queue_full", "write_error", "closed")
    count records so far.
    """

    def __init__(
        self,
        config: RecordConfig,
        *,
        queue_size: int = defaults.RECORD_QUEUE_SIZE,
        opener: Callable[[str], tuple[str, IO[bytes]]] = open_new,
    ) -> None:
        self.config = config
        self.full = config.content == "full"
        self._sample = config.sample
        self._on_drop: Callable[[DropReason, int], None] | None = None
        self._writer = Writer(
            config.path,
            max_bytes=max(1, int(config.max_file_mb * 1024 * 1024)),
            queue_size=queue_size,
            on_drop=self._dropped,
            opener=opener,
        )

    def count_drops(self, on_drop: Callable[[DropReason, int], None]) -> None:
        """Report every record dropped to ``on_drop(reason, n)`` (the client's metric)."""
        self._on_drop = on_drop

    def samples(self, key: str | None, random: Callable[[], float]) -> bool:
        """Whether a call with routing ``key`` is recorded (``random`` draws for no key)."""
        rate = self._sample
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        point = position(_SALT, key) if key is not None else random() % 1.0
        return point < rate

    @staticmethod
    def new_id() -> str:
        return f"{_ids.getrandbits(64):016x}"

    def submit(self, template: Callable[_P, str], /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        """Hand a record to the writer, which writes ``template(*args, **kwargs)`` (the
        record's JSON line, newline included: ``record._build``'s ``call_line`` or
        ``shadow_line``) with the lines that came in with it; never waits. The values must not
        change once handed over; names and numbers, and tuples of them, wait for the writer
        without the garbage collector tracking them."""
        self._writer.put(template, args, kwargs)

    def flush(self, timeout: float = defaults.RECORD_CLOSE_WAIT_S) -> bool:
        """Write what is queued now (the writer otherwise writes every
        ``defaults.RECORD_FLUSH_S``), waiting at most ``timeout`` seconds; whether it did.
        Blocks: from async code, call it in a worker thread."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = defaults.RECORD_CLOSE_WAIT_S) -> None:
        """Write what is queued and close the file, waiting at most ``timeout`` seconds."""
        self._writer.close(timeout)

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def dropped(self) -> dict[str, int]:
        return dict(self._writer.dropped)

    @property
    def paths(self) -> list[str]:
        """The files written so far, oldest first."""
        return list(self._writer.paths)

    def _dropped(self, reason: DropReason, count: int) -> None:
        if self._on_drop is not None:
            self._on_drop(reason, count)
