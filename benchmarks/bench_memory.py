"""Resident memory over many calls: does anything grow with the number of calls?

Each client makes ``Mode.memory_calls`` calls (100,000 in full mode) through an
``httpx.MockTransport`` after a warm-up that fills every cache a call fills (encodings, parsed
endpoints, breaker windows, state keys). The process's resident set size is read from
``/proc/self/statm`` after a ``gc.collect()``, at the start and after every tenth of the calls;
the figure is the growth from the start to the largest reading, in MB. Clients:

- ``Client``: non-streaming calls with every guard on;
- ``AsyncClient``: the same under asyncio, giving the loop a turn after each call as real
  I/O does;
- ``Client``, streamed: 8-chunk streams read to the end.

The goal is at most 5 MB over 100,000 calls. In quick mode (fewer calls) the target line scales
the largest growth to 100,000 calls, which overstates a growth that levels off.

Run alone:  python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Awaitable, Callable

import httpx
from _harness import Mode, Section, Target, run_alone
from _payloads import (
    MAX_TOKENS,
    MESSAGES,
    completion_handler,
    guarded_async_client,
    guarded_client,
    stream_handler,
)

GOAL_MB = 5.0  # RSS growth over 100,000 calls
PER = 100_000
WARM_UP = 5_000
CHECKPOINTS = 10
STREAM_SHARE = 5  # streamed calls cost ~2x a plain one: make a fifth as many


def rss_mb() -> float | None:
    """Resident set size in MB (None where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _growth(readings: list[float]) -> float:
    return max(readings) - readings[0]


def measure(call: Callable[[], object], calls: int) -> tuple[list[float], float]:
    """RSS readings (MB) at the start and at each checkpoint, and the seconds it took."""
    for _ in range(min(WARM_UP, calls)):
        call()
    gc.collect()
    start = rss_mb()
    assert start is not None
    readings = [start]
    began = time.monotonic()
    step = max(1, calls // CHECKPOINTS)
    for done in range(0, calls, step):
        for _ in range(min(step, calls - done)):
            call()
        gc.collect()
        now = rss_mb()
        assert now is not None
        readings.append(now)
    return readings, time.monotonic() - began


async def measure_async(
    call: Callable[[], Awaitable[object]], calls: int
) -> tuple[list[float], float]:
    for _ in range(min(WARM_UP, calls)):
        await call()
    gc.collect()
    start = rss_mb()
    assert start is not None
    readings = [start]
    began = time.monotonic()
    step = max(1, calls // CHECKPOINTS)
    for done in range(0, calls, step):
        for _ in range(min(step, calls - done)):
            await call()
        gc.collect()
        now = rss_mb()
        assert now is not None
        readings.append(now)
    return readings, time.monotonic() - began


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    section = Section("7. Resident memory over many calls (MockTransport, after a warm-up)")
    if rss_mb() is None:
        section.notes.append("skipped: no /proc/self/statm on this system")
        target = Target(
            "RSS growth over 100,000 calls",
            None,
            GOAL_MB,
            higher_is_better=False,
            basis="/proc/self/statm unavailable",
            unit="MB",
        )
        return [section], [target]

    calls = mode.memory_calls
    worst = 0.0

    def record(label: str, readings: list[float], seconds: float, made: int) -> None:
        nonlocal worst
        growth = _growth(readings)
        worst = max(worst, growth * PER / made)
        section.add(
            f"{label}, RSS growth over {made:,} calls",
            [growth],
            "MB",
            note=f"RSS {readings[0]:.1f} -> {readings[-1]:.1f} MB, {seconds:.0f} s",
        )

    client = guarded_client(httpx.MockTransport(completion_handler))
    try:
        readings, seconds = measure(
            lambda: client.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
            ),
            calls,
        )
    finally:
        client.close()
    record("Client", readings, seconds, calls)

    async def async_part() -> tuple[list[float], float]:
        aclient = guarded_async_client(httpx.MockTransport(completion_handler))

        async def call() -> None:
            await aclient.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
            )
            # A MockTransport answers without the task ever giving the loop a turn; asyncio
            # frees the cancelled timer of each attempt's deadline only when its loop turns,
            # which real I/O always makes it do. Without this the timers pile up (~80 bytes
            # a call) and the figure measures the mock, not the client.
            await asyncio.sleep(0)

        try:
            return await measure_async(call, calls)
        finally:
            await aclient.aclose()

    readings, seconds = asyncio.run(async_part())
    record("AsyncClient", readings, seconds, calls)

    streamer = guarded_client(httpx.MockTransport(stream_handler(8, is_async=False)))

    def stream() -> None:
        for _ in streamer.chat.completions.create(
            model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
        ):
            pass

    try:
        readings, seconds = measure(stream, calls // STREAM_SHARE)
    finally:
        streamer.close()
    record("Client, streamed (8 chunks)", readings, seconds, calls // STREAM_SHARE)

    if calls < PER:
        section.notes.append(
            f"quick mode: the target scales the growth over fewer calls to {PER:,} calls"
        )
    target = Target(
        "RSS growth over 100,000 calls, worst client",
        worst,
        GOAL_MB,
        higher_is_better=False,
        basis="largest RSS reading minus the first, after a warm-up; gc.collect() before each",
        unit="MB",
    )
    return [section], [target]


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
