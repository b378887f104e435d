"""Soak: resident memory and open file descriptors over many calls that fail in every way.

20,000 calls through ``Client`` and 20,000 through ``AsyncClient`` (asyncio; 4,000 each in
quick mode) against a ``FakeProvider`` in another process (``serve.py --kind soak``), which
answers each deployment with its own fault every time (``_payloads.SOAK_FAULTS``). The calls
follow a fixed cycle of ``CYCLE`` kinds, so every run makes the same mix: in every 20 calls,

- 12 plain answers and 2 streams read to their end;
- a 503 and a 429, each with a 2 ms retry-after-ms (retried, then failed);
- a dropped connection and a malformed body;
- a stream closed after its first chunk (``close()`` / ``aclose()``);
- one cut short by its caller: under asyncio, a call cancelled by a cancel scope 1 ms into a
  50 ms answer; with ``Client``, a stream dropped after its first chunk without being closed.

The clients run with every guard on, as a service would run them: ``Client`` on 8 threads,
``AsyncClient`` with 32 calls in flight. Two settings keep the faults reaching the server:
backoff jitter is off (the retry waits the server's 2 ms, not up to a second of jitter), and
breakers open for 50 ms only, so they cycle open, half-open and closed all through the run
(their log lines are silenced meanwhile).

What is measured, per client: the process's resident set size (``/proc/self/statm``) and its
open file descriptors (``/proc/self/fd``) after a warm-up (``WARM_UP`` calls of the same mix
through a client that is then closed), and again after the measured calls, once that client is
closed too; RSS is also read every tenth of the calls. The targets: RSS flat within
±5 MiB over 20,000 calls (quick mode scales its change to that many), and the descriptors back
to their number at the start.

Run alone:  python benchmarks/bench_soak.py [--quick]
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import anyio
from _harness import Mode, Section, Target, run_alone, run_async
from _payloads import ENVIRON, MESSAGES, SOAK_OK, soak_registry
from bench_loopback import ServerProcess
from bench_memory import rss_mb

from guardedllm import AsyncClient, Client, Registry
from guardedllm.errors import GuardedLLMError
from guardedllm.guards import BreakerConfig

GOAL_MB = 5.0  # |RSS after - RSS before| over PER calls, MiB
PER = 20_000
MAX_TOKENS = 32
THREADS = 8  # Client: calls at once, one thread each
IN_FLIGHT = 32  # AsyncClient: calls at once
WARM_UP = 1_000
CHECKPOINTS = 10
CANCEL_AFTER_S = 0.001
SECTION_TIMEOUT_S = 900.0  # the async run, warm-up included; far above a healthy one

# One cycle of call kinds; the run repeats it. "cut" is the cancellation (async) or the
# abandoned stream (sync).
CYCLE = ("ok",) * 12 + ("stream",) * 2 + ("5xx", "429", "drop", "malformed", "closed-early", "cut")
DEPLOYMENT = {
    "ok": SOAK_OK,
    "stream": SOAK_OK,
    "5xx": "soak-5xx",
    "429": "soak-429",
    "drop": "soak-drop",
    "malformed": "soak-malformed",
    "closed-early": "soak-long-stream",
    "cut": "soak-long-stream",  # sync: a stream dropped unclosed
}
# Breakers that trip on the fault deployments and come back within 50 ms, again and again.
BREAKER = BreakerConfig(open_s=0.05, max_open_s=0.05, backoff_multiplier=1.0)


def kinds(calls: int) -> Iterator[str]:
    for number in range(calls):
        yield CYCLE[number % len(CYCLE)]


def open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


@dataclass
class Soak:
    """One client's run: readings before and after, RSS at each checkpoint, outcomes."""

    rss_before: float = 0.0
    rss_after: float = 0.0
    fds_before: int | None = None
    fds_after: int | None = None
    readings: list[float] = field(default_factory=list)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0

    @property
    def rss_change(self) -> float:
        return self.rss_after - self.rss_before

    def note(self) -> str:
        tally = sorted(self.outcomes.items(), key=lambda item: -item[1])
        outcomes = ", ".join(f"{name} {count}" for name, count in tally)
        return (
            f"RSS {self.rss_before:.1f} -> {self.rss_after:.1f} MiB (peak "
            f"{max(self.readings):.1f}), fds {self.fds_before} -> {self.fds_after}, "
            f"{self.seconds:.0f} s; {outcomes}"
        )


def settle() -> tuple[float, int | None]:
    gc.collect()
    rss = rss_mb()
    assert rss is not None
    return rss, open_fds()


# --------------------------------------------------------------------------- Client


def call_sync(client: Client, kind: str) -> str:
    """One call of ``kind``; what happened, for the tally."""
    streamed = kind in ("stream", "closed-early", "cut")
    try:
        result = client.chat.completions.create(
            model=DEPLOYMENT[kind], messages=MESSAGES, max_tokens=MAX_TOKENS, stream=streamed
        )
        if kind == "stream":
            with result:
                for _ in result:
                    pass
        elif kind == "closed-early":
            next(iter(result))
            result.close()
        elif kind == "cut":
            next(iter(result))
            del result  # dropped without close: freed, and settled, by reference counting
    except GuardedLLMError as error:
        return type(error).__name__
    return "ok" if kind == "ok" else kind


def soak_sync(registry: Registry, calls: int) -> Soak:
    soak = Soak()

    def run(count: int, readings: list[float] | None) -> None:
        with Client(registry, environ=ENVIRON, random=lambda: 0.0, breaker=BREAKER) as client:
            step = max(1, count // CHECKPOINTS)
            with ThreadPoolExecutor(max_workers=THREADS) as pool:
                for done in range(0, count, step):
                    batch = [next(work) for _ in range(min(step, count - done))]
                    for outcome in pool.map(lambda kind: call_sync(client, kind), batch):
                        soak.outcomes[outcome] += 1
                    if readings is not None:
                        gc.collect()
                        readings.append(rss_mb() or 0.0)

    work = kinds(WARM_UP + calls)
    run(WARM_UP, None)
    soak.outcomes.clear()
    soak.rss_before, soak.fds_before = settle()
    soak.readings.append(soak.rss_before)
    began = time.monotonic()
    run(calls, soak.readings)
    soak.seconds = time.monotonic() - began
    soak.rss_after, soak.fds_after = settle()
    return soak


# --------------------------------------------------------------------------- AsyncClient


async def call_async(client: AsyncClient, kind: str) -> str:
    streamed = kind in ("stream", "closed-early")
    model = "soak-slow" if kind == "cut" else DEPLOYMENT[kind]
    try:
        if kind == "cut":  # a caller that gives up: its cancel scope ends the call
            with anyio.move_on_after(CANCEL_AFTER_S) as scope:
                await client.chat.completions.create(
                    model=model, messages=MESSAGES, max_tokens=MAX_TOKENS
                )
            return "cancelled" if scope.cancelled_caught else "ok"
        result = await client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=streamed
        )
        if streamed:
            async with result:
                async for _ in result:
                    if kind == "closed-early":
                        break
    except GuardedLLMError as error:
        return type(error).__name__
    return "ok" if kind == "ok" else kind


async def soak_async(registry: Registry, calls: int) -> Soak:
    soak = Soak()
    work = kinds(WARM_UP + calls)

    async def run(count: int, readings: list[float] | None) -> None:
        client = AsyncClient(registry, environ=ENVIRON, random=lambda: 0.0, breaker=BREAKER)
        step = max(1, count // CHECKPOINTS)

        async def worker(batch: Iterator[str]) -> None:  # takes kinds until the batch is done
            for kind in batch:
                soak.outcomes[await call_async(client, kind)] += 1

        try:
            for done in range(0, count, step):
                batch = iter([next(work) for _ in range(min(step, count - done))])
                await asyncio.gather(*(worker(batch) for _ in range(IN_FLIGHT)))
                if readings is not None:
                    gc.collect()
                    readings.append(rss_mb() or 0.0)
        finally:
            await client.aclose()

    await run(WARM_UP, None)
    soak.outcomes.clear()
    await asyncio.sleep(0.1)  # let the closed pool's transports finish closing
    soak.rss_before, soak.fds_before = settle()
    soak.readings.append(soak.rss_before)
    began = time.monotonic()
    await run(calls, soak.readings)
    soak.seconds = time.monotonic() - began
    await asyncio.sleep(0.1)
    soak.rss_after, soak.fds_after = settle()
    return soak


# --------------------------------------------------------------------------- the measurement


def quiet_breakers() -> Callable[[], None]:
    """Silence guardedllm's breaker log lines (hundreds of transitions a run); returns the
    undo."""
    logger = logging.getLogger("guardedllm")
    level = logger.level
    logger.setLevel(logging.ERROR)
    return lambda: logger.setLevel(level)


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    section = Section(
        "8. Soak: RSS and open file descriptors over many failing calls (FakeProvider, another "
        "process)"
    )
    if rss_mb() is None or open_fds() is None:
        section.notes.append("skipped: no /proc/self/statm or /proc/self/fd on this system")
        missing = "/proc unavailable"
        return [section], [
            Target("soak RSS change", None, GOAL_MB, higher_is_better=False, basis=missing),
            Target("soak open fds change", None, 0, higher_is_better=False, basis=missing),
        ]

    calls = mode.soak_calls
    undo = quiet_breakers()
    try:
        with ServerProcess("soak") as server:
            registry = soak_registry(server.base_url + "/v1")
            # Bounded in count, and each call by its deadline (``_payloads.CONFIG``).
            results = {"Client": soak_sync(registry, calls)}
            results["AsyncClient"] = run_async(
                lambda: soak_async(registry, calls), timeout_s=SECTION_TIMEOUT_S
            )
    finally:
        undo()

    for label, soak in results.items():
        section.add(
            f"{label}, RSS change over {calls:,} calls", [soak.rss_change], "MiB", note=soak.note()
        )
        fds = (soak.fds_after or 0) - (soak.fds_before or 0)
        section.add(f"{label}, open fds change over {calls:,} calls", [float(fds)], "fds")
    section.notes.append(
        f"each {len(CYCLE)} calls: 12 answers, 2 streams read to the end, a 503 and a 429 "
        "(2 ms retry-after-ms), a dropped connection, a malformed body, a stream closed after "
        "its first chunk, and one cut short (asyncio: cancelled 1 ms in; sync: a stream "
        "dropped unclosed); breakers cycle every 50 ms; backoff jitter off"
    )
    # Quick mode makes fewer calls: its change is scaled to PER calls for the target, which
    # overstates a change that levels off.
    worst_rss = max(abs(soak.rss_change) for soak in results.values()) * PER / calls
    if calls < PER:
        section.notes.append(f"quick mode: the target scales the RSS change to {PER:,} calls")
    worst_fds = max((soak.fds_after or 0) - (soak.fds_before or 0) for soak in results.values())
    targets = [
        Target(
            f"soak: RSS change over {PER:,} failing calls, worst client",
            worst_rss,
            GOAL_MB,
            higher_is_better=False,
            basis="|RSS after - RSS before|, each after a warm-up and with its client closed",
            unit="MiB",
        ),
        Target(
            f"soak: open fds after {calls:,} failing calls vs before, worst client",
            float(worst_fds),
            0,
            higher_is_better=False,
            basis="/proc/self/fd entries, each with its client closed",
            unit="fds",
        ),
    ]
    return [section], targets


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
