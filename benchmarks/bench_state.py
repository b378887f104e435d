"""Guard state on a shared store: a call's cost with ``RedisBackend`` next to ``MemoryBackend``.

The same non-streaming call as ``bench_overhead`` (every guard on, plus a global spend budget),
through an ``httpx.MockTransport``, with the guards' state in process or on a redis-server
started here on a loopback port (persistence off), so what differs is the store alone:

- per-call wall time of a sync ``Client`` (a state step is a round trip: wall time, not CPU,
  is what a caller waits for);
- throughput of an ``AsyncClient`` with 64 calls in flight (the state steps run in worker
  threads, so the event loop keeps serving the other calls meanwhile);
- round trips per call, counted by the client (each request it sends, a command or a whole
  pipeline, is one round trip), and the scripts the server ran per call (``INFO
  commandstats``), before and after a batch of calls.

Skipped, saying so, where no ``redis-server`` binary is installed.

Run alone:  python benchmarks/bench_state.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import redis
from _harness import Mode, Section, Target, run_alone, run_async
from _payloads import ENVIRON, MAX_TOKENS, MESSAGES, completion_handler, registry

from guardedllm import AsyncClient, Client
from guardedllm.guards import SpendBudget
from guardedllm.state import MemoryBackend, RedisBackend, StateBackend

IN_FLIGHT = 64
BUDGET = SpendBudget(name="bench", scope="global", window="day", limit_usd=1e6)
# The scripts' commands in INFO commandstats (a script's inner commands are not counted).
SCRIPTS = ("cmdstat_evalsha", "cmdstat_evalsha_ro", "cmdstat_eval")
COUNTED_CALLS = 200


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A redis-server's URL on a free loopback port, or None when none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="guardedllm-bench-redis-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process = subprocess.Popen(
        [*argv, "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    break
            except OSError:
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def _backends(url: str) -> dict[str, Callable[[], StateBackend]]:
    prefixes = iter(range(10**6))
    return {
        "MemoryBackend": MemoryBackend,
        "RedisBackend (loopback)": lambda: RedisBackend.from_url(
            url, key_prefix=f"bench{next(prefixes)}:"
        ),
    }


def _sync_client(state: StateBackend) -> Client:
    return Client(
        registry(),
        transport=httpx.MockTransport(completion_handler),
        environ=ENVIRON,
        state=state,
        budgets=[BUDGET],
    )


def per_call(mode: Mode, url: str, section: Section) -> None:
    clients = {name: _sync_client(make()) for name, make in _backends(url).items()}
    calls = dict.fromkeys(clients, 0)
    samples: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for name, client in clients.items():  # warm up, and size a sample to ~sample_s
            started = time.perf_counter()
            count = 0
            while time.perf_counter() - started < mode.sample_s:
                client.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=50)
                count += 1
            calls[name] = max(10, count)
        for _ in range(mode.rounds):
            for name, client in clients.items():
                gc.collect()
                started = time.perf_counter()
                for _ in range(calls[name]):
                    client.chat.completions.create(
                        model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
                    )
                samples[name].append((time.perf_counter() - started) / calls[name])
    finally:
        for client in clients.values():
            client.close()
    baseline = samples["MemoryBackend"]
    for name, values in samples.items():
        section.add(
            name, values, "us/call", scale=1e6, baseline=baseline, baseline_label="MemoryBackend"
        )


async def _in_flight(mode: Mode, url: str, section: Section) -> None:
    samples: dict[str, list[float]] = {}
    for name, make in _backends(url).items():
        samples[name] = []
        async with AsyncClient(
            registry(),
            transport=httpx.MockTransport(completion_handler),
            environ=ENVIRON,
            state=make(),
            budgets=[BUDGET],
        ) as client:

            async def worker(stop_at: float, done: list[int], client: AsyncClient = client) -> None:
                while time.perf_counter() < stop_at:
                    await client.chat.completions.create(
                        model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
                    )
                    done[0] += 1

            for _ in range(mode.loop_rounds + 1):  # the first round warms the threads up
                done = [0]
                started = time.perf_counter()
                stop_at = started + mode.loop_window_s
                await asyncio.gather(*(worker(stop_at, done) for _ in range(IN_FLIGHT)))
                samples[name].append(done[0] / (time.perf_counter() - started))
            samples[name] = samples[name][1:]
    baseline = samples["MemoryBackend"]
    for name, values in samples.items():
        section.add(name, values, "calls/s", baseline=baseline, baseline_label="MemoryBackend")


class _CountingConnection(redis.Connection):
    """A redis-py connection that counts what it sends: one ``send_packed_command`` is one
    request (a command, or a whole pipeline) whose replies are then read, a round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        super().send_packed_command(command, check_health)


def round_trips(url: str, section: Section) -> tuple[float, float]:
    """Round trips per call with RedisBackend, as the client counted them, and the scripts
    run per call, as the server counted them."""
    server = redis.Redis.from_url(url)
    pool = redis.BlockingConnectionPool.from_url(
        url, connection_class=_CountingConnection, max_connections=8, timeout=5
    )
    client = redis.Redis.from_pool(pool)
    state = RedisBackend(client, key_prefix="bench-count:")

    def scripts() -> int:
        stats: dict[str, Any] = server.info("commandstats")
        return sum(int(stats[name]["calls"]) for name in SCRIPTS if name in stats)

    try:
        with _sync_client(state) as guarded:
            guarded.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS)
            sent, ran = _CountingConnection.sent, scripts()
            for _ in range(COUNTED_CALLS):
                guarded.chat.completions.create(
                    model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
                )
            per_call = (_CountingConnection.sent - sent) / COUNTED_CALLS
            scripts_per_call = (scripts() - ran) / COUNTED_CALLS
    finally:
        client.close()
        server.close()
    section.notes.append(
        f"round trips per call with RedisBackend: {per_call:.1f} (requests sent, counted by "
        f"the client; {scripts_per_call:.1f} scripts run per call by INFO commandstats; over "
        f"{COUNTED_CALLS} calls, a spend budget and every other guard on)"
    )
    return per_call, scripts_per_call


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    sync = Section("8a. Per-call wall time, sync Client, guard state in memory or on Redis")
    flight = Section(f"8b. AsyncClient, {IN_FLIGHT} calls in flight, state in memory or on Redis")
    with redis_server() as url:
        if url is None:
            sync.notes.append("skipped: no redis-server installed (apt-get install redis-server)")
            return [sync], []
        per_call(mode, url, sync)
        run_async(lambda: _in_flight(mode, url, flight), timeout_s=300)
        trips, _ = round_trips(url, sync)
    targets = [
        Target(
            "round trips per call with RedisBackend (loopback)",
            trips,
            # The design's goal: one round trip per phase of a call (admit, reserve, acquire,
            # settle: each phase's guard operations go out as one pipeline per round) and the
            # server's TIME now and then.
            5.0,
            higher_is_better=False,
            basis="one spend budget and every guard on; goal: one round trip per phase",
            unit="round trips",
        )
    ]
    return [sync, flight], targets


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
