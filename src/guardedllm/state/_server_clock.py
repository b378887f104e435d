"""The Redis server's clock as estimated in this process, for guards on many hosts to share.

Guards sharing a backend must agree on ``now``: a bucket refilled by one host's clock and read by
another's that runs a second behind would refill that second twice. Host clocks disagree by
milliseconds to seconds; the server's clock is one clock they can all read. Reading it on every
decision would cost a round trip each, so this process measures the offset between its wall
clock and the server's with one ``TIME`` and adds it to ``time.time()`` until the next
measurement, ``resync_s`` later.

Error bound: the server read its clock at some instant within the round trip; taking the
midpoint puts the estimate within half the round trip of the server's time at measurement
(``error_s``). Between measurements the two clocks drift apart: NTP-disciplined clocks by
milliseconds per minute at worst, and a step of the local clock (a manual change, NTP stepping
instead of slewing) is carried into the estimate until the next measurement. A local clock
that moved backwards past the measurement forces a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ServerClock"]


class ServerClock:
    """``read()`` gives the estimate, or None when a measurement is due; after one, pass what
    it saw to ``measured``. Not locked: the sync backend serialises measurements itself."""

    def __init__(self, *, resync_s: float, local: Callable[[], float] = time.time) -> None:
        self.resync_s = resync_s
        self.local = local
        self.offset: float | None = None  # server time - local time, in seconds
        self.error_s = 0.0  # half the round trip of the last measurement
        self._measured_at = 0.0

    def read(self) -> float | None:
        now = self.local()
        if self.offset is None or not (0 <= now - self._measured_at < self.resync_s):
            return None
        return now + self.offset

    def measured(self, sent_at: float, server_time: tuple[int, int], received_at: float) -> float:
        """Take a measurement: the local times a ``TIME`` was sent and answered, and its
        answer (seconds, microseconds). Returns the estimate at ``received_at``."""
        seconds, microseconds = server_time
        midpoint = (sent_at + received_at) / 2
        self.offset = seconds + microseconds / 1e6 - midpoint
        self.error_s = max(0.0, received_at - sent_at) / 2
        self._measured_at = received_at
        return received_at + self.offset
