"""Loopback throughput of async clients, with 1 and 64 requests in flight.

The server runs in a separate process (``serve.py``), so it does not share the client's GIL:
by default the ``raw`` canned-response server, which spends ~30 us of CPU per request (mostly
socket system calls), a tenth of the cheapest client, so that the client is what is measured;
``--server fake`` uses guardedllm's FakeProvider instead (~300 us per request: it limits raw
aiohttp at 64 in flight).
Every client runs in one asyncio loop in this process, and the configurations take turns in
interleaved rounds (rotating order). Each sample keeps ``in_flight`` calls going for
``Mode.loop_window_s`` (at most ``MAX_CALLS`` calls), after one untimed wave that reopens any
connection the pool let go while other configurations ran.

Configurations:

- guardedllm ``AsyncClient`` with its default transport (aiohttp's pool under asyncio);
- guardedllm ``AsyncClient(http_client=httpx.AsyncClient())`` (httpx's own pool);
- raw ``httpx.AsyncClient`` and raw ``aiohttp.ClientSession``: ``post`` + ``json()``;
- the openai SDK's ``AsyncOpenAI``, if importable: with its default HTTP client, and with
  ``DefaultAioHttpClient`` when it has one;
- LiteLLM, if importable: ``litellm.acompletion(model="openai/...", api_base=..., api_key=...)``
  with the HTTP client LiteLLM makes and caches itself, and a ``litellm.Router`` with one
  deployment on the same server.

Reported per cell: calls/s (median over rounds), the client's CPU per call (process time over
the window / calls) and the server's CPU use (from /proc); a server near 100 % of a core is the
bottleneck, which the notes say.

Run alone:  python benchmarks/bench_loopback.py [--quick] [--server raw|fake]
"""

from __future__ import annotations

import asyncio
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import httpx
from _harness import (
    FULL,
    QUICK,
    Mode,
    Section,
    Stats,
    Target,
    paired_ratios,
    run_async,
    schedule,
    settle_async,
)
from _payloads import (
    API_KEY,
    ENVIRON,
    MAX_TOKENS,
    MESSAGES,
    MODEL_ID,
    REQUEST_BODY,
    REQUEST_HEADERS,
    registry,
)
from _peers import litellm_peer, openai_peer

from guardedllm import AsyncClient

SERVE = Path(__file__).resolve().parent / "serve.py"
IN_FLIGHT = (1, 64)
MAX_CALLS = 200_000  # per sample, whatever the window: bounds a sample of a very fast client
START_TIMEOUT_S = 20.0  # for the server process to print its URL
SAMPLE_TIMEOUT_S = 60.0  # one sample, drain included; far above any healthy sample
SECTION_TIMEOUT_S = 900.0  # the whole measurement; the full mode needs a few minutes
SERVER_BOUND = 0.85  # server CPU share of one core above which the server limits throughput
GOAL = 3.0  # 64-in-flight throughput >= 3x the openai SDK's

GUARDED = "guardedllm AsyncClient (default: aiohttp)"
GUARDED_HTTPX = "guardedllm AsyncClient (http_client=httpx.AsyncClient())"
RAW_HTTPX = "raw httpx.AsyncClient"
RAW_AIOHTTP = "raw aiohttp.ClientSession"
SDK = "openai.AsyncOpenAI (default client)"
SDK_AIOHTTP = "openai.AsyncOpenAI (DefaultAioHttpClient)"
LITELLM = "litellm.acompletion (its own client)"
LITELLM_ROUTER = "litellm.Router (one deployment)"


# --------------------------------------------------------------------------- the server


class ServerProcess:
    """``serve.py`` in a child process: started on enter, stopped (stdin closed, then killed
    if it lingers) on exit."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __enter__(self) -> ServerProcess:
        process = subprocess.Popen(
            [sys.executable, str(SERVE), "--kind", self.kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._process = process
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT_S):
                self.__exit__(None, None, None)
                raise RuntimeError(
                    f"the {self.kind} benchmark server printed no URL within "
                    f"{START_TIMEOUT_S:g} s; run `python {SERVE} --kind {self.kind}` to see why."
                )
        self.base_url = process.stdout.readline().decode().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the benchmark server printed {self.base_url!r}, not its URL")
        return self

    def cpu_seconds(self) -> float | None:
        """The server's CPU time so far (user + system), or None where /proc is missing."""
        if self._process is None:
            return None
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self._ticks  # utime, stime

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


# --------------------------------------------------------------------------- the clients


Call = Callable[[], Awaitable[object]]


@dataclass
class Clients:
    calls: dict[str, Call]
    closers: list[Callable[[], Awaitable[object]]]
    notes: list[str]

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


def make_clients(base_url: str) -> Clients:
    """Every configuration, against ``base_url``. Call inside the running loop."""
    api = base_url + "/v1"
    url = api + "/chat/completions"
    calls: dict[str, Call] = {}
    closers: list[Callable[[], Awaitable[object]]] = []
    notes: list[str] = []

    guarded = AsyncClient(registry(api), environ=ENVIRON)
    own_httpx = httpx.AsyncClient()
    guarded_httpx = AsyncClient(registry(api), http_client=own_httpx, environ=ENVIRON)
    raw_httpx = httpx.AsyncClient()
    session = aiohttp.ClientSession()
    closers += [guarded.aclose, guarded_httpx.aclose, own_httpx.aclose, raw_httpx.aclose]
    closers.append(session.close)

    def guarded_call(client: AsyncClient) -> Call:
        return lambda: client.chat.completions.create(
            model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
        )

    async def raw_httpx_call() -> object:
        response = await raw_httpx.post(url, json=REQUEST_BODY, headers=REQUEST_HEADERS)
        response.raise_for_status()
        return response.json()

    async def raw_aiohttp_call() -> object:
        async with session.post(url, json=REQUEST_BODY, headers=REQUEST_HEADERS) as response:
            response.raise_for_status()
            return await response.json()

    calls[GUARDED] = guarded_call(guarded)
    calls[GUARDED_HTTPX] = guarded_call(guarded_httpx)
    calls[RAW_HTTPX] = raw_httpx_call
    calls[RAW_AIOHTTP] = raw_aiohttp_call

    peer, why = openai_peer()
    notes.append(f"peer: {why}")
    if peer is not None:
        sdk = peer.async_client(api)
        closers.append(sdk.close)
        calls[SDK] = _sdk_call(sdk)
        try:
            aio_http_client = peer.openai.DefaultAioHttpClient()
        except (AttributeError, RuntimeError) as exc:
            notes.append(f"openai.DefaultAioHttpClient unavailable ({exc}); skipped")
        else:
            sdk_aiohttp = peer.async_client(api, aio_http_client)
            closers.append(sdk_aiohttp.close)
            calls[SDK_AIOHTTP] = _sdk_call(sdk_aiohttp)

    lite, why = litellm_peer()
    notes.append(f"peer: {why}")
    if lite is not None:
        acompletion = lite.litellm.acompletion
        calls[LITELLM] = lambda: acompletion(
            model=lite.model,
            api_base=api,
            api_key=API_KEY,
            messages=MESSAGES,
            max_completion_tokens=MAX_TOKENS,
        )
        try:
            router = lite.router(api)
        except Exception as exc:  # a Router this version cannot build: skip it, keep the rest
            notes.append(f"litellm.Router unavailable ({type(exc).__name__}: {exc}); skipped")
        else:
            calls[LITELLM_ROUTER] = lambda: router.acompletion(
                model="chat", messages=MESSAGES, max_completion_tokens=MAX_TOKENS
            )
        closer = getattr(lite.litellm, "close_litellm_async_clients", None)
        if closer is not None:
            closers.append(closer)
    return Clients(calls, closers, notes)


def _sdk_call(sdk: Any) -> Call:
    return lambda: sdk.chat.completions.create(
        model=MODEL_ID, messages=MESSAGES, max_completion_tokens=MAX_TOKENS
    )


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Sample:
    calls: int
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float | None

    @property
    def rate(self) -> float:
        return self.calls / self.wall_s


async def sample(call: Call, in_flight: int, window_s: float, server: ServerProcess) -> Sample:
    """Keep ``in_flight`` calls going for ``window_s``; calls started before the end finish."""
    await asyncio.gather(*(call() for _ in range(in_flight)))  # reopen idle connections
    done = 0
    started = time.perf_counter()
    stop_at = started + window_s

    async def worker() -> None:
        nonlocal done
        while done < MAX_CALLS and time.perf_counter() < stop_at:
            await call()
            done += 1

    server_before = server.cpu_seconds()
    cpu_before = time.process_time()
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(in_flight))), window_s + SAMPLE_TIMEOUT_S
    )
    wall = time.perf_counter() - started
    await settle_async()  # background work the calls left (LiteLLM's logging) counts as theirs
    cpu = time.process_time() - cpu_before
    server_after = server.cpu_seconds()
    server_cpu = (
        server_after - server_before
        if server_before is not None and server_after is not None
        else None
    )
    return Sample(done, wall, cpu, server_cpu)


async def measure(
    mode: Mode, server: ServerProcess
) -> tuple[dict[tuple[str, int], list[Sample]], list[str]]:
    clients = make_clients(server.base_url)
    try:
        cells = [(name, n) for n in IN_FLIGHT for name in clients.calls]
        for name, n in cells:  # warm up: first-call costs, connections, the encoding
            await sample(clients.calls[name], n, min(0.2, mode.loop_window_s), server)
        samples: dict[tuple[str, int], list[Sample]] = {cell: [] for cell in cells}
        by_label = {f"{name} @{n}": (name, n) for name, n in cells}
        # Rounds stop once half again the expected time has passed (MIN_ROUNDS done).
        budget = 1.5 * mode.loop_rounds * len(cells) * mode.loop_window_s
        for order in schedule(list(by_label), rounds=mode.loop_rounds, budget_s=budget):
            for label in order:
                name, in_flight = by_label[label]
                samples[(name, in_flight)].append(
                    await sample(clients.calls[name], in_flight, mode.loop_window_s, server)
                )
        return samples, clients.notes
    finally:
        await clients.aclose()


def run(mode: Mode, server_kind: str = "raw") -> tuple[list[Section], list[Target]]:
    section = Section(f"2. Loopback throughput, asyncio, server in another process ({server_kind})")
    with ServerProcess(server_kind) as server:
        samples, notes = run_async(lambda: measure(mode, server), timeout_s=SECTION_TIMEOUT_S)
    section.notes += notes
    rates = {cell: [s.rate for s in cell_samples] for cell, cell_samples in samples.items()}
    server_bound: list[str] = []
    for n in IN_FLIGHT:
        for (name, in_flight), cell in samples.items():
            if in_flight != n:
                continue
            cpu = Stats.of([s.client_cpu_s / s.calls for s in cell]).median
            shares = [s.server_cpu_s / s.wall_s for s in cell if s.server_cpu_s is not None]
            server_share = Stats.of(shares).median if shares else None
            note = f"client CPU {cpu * 1e6:,.0f} us/call"
            if server_share is not None:
                note += f", server CPU {server_share:.0%}"
                if server_share >= SERVER_BOUND:
                    server_bound.append(f"{name} @{n}")
            section.add(
                f"{name} @{n}",
                rates[(name, n)],
                "calls/s",
                baseline=rates[(RAW_AIOHTTP, n)],
                baseline_label=f"{RAW_AIOHTTP} @{n}",
                note=note,
            )
    section.notes.append(
        f"ratios are against {RAW_AIOHTTP} at the same number in flight, paired by round"
    )
    if server_bound:
        section.notes.append(
            "server-bound (server CPU >= "
            f"{SERVER_BOUND:.0%} of a core): {', '.join(server_bound)}; these figures measure "
            "the server, not the client"
        )

    def versus(other: str) -> float:
        return Stats.of(paired_ratios(rates[(GUARDED, 64)], rates[(other, 64)])).median

    section.notes.append(
        f"@64, guardedllm default: x{versus(GUARDED_HTTPX):.1f} guardedllm over httpx's pool, "
        f"x{versus(RAW_HTTPX):.1f} raw httpx.AsyncClient"
        + (f", x{versus(SDK):.1f} the openai SDK" if (SDK, 64) in rates else "")
        + (f", x{versus(LITELLM):.1f} LiteLLM" if (LITELLM, 64) in rates else "")
        + (
            f", x{versus(LITELLM_ROUTER):.1f} LiteLLM's Router"
            if (LITELLM_ROUTER, 64) in rates
            else ""
        )
    )
    if (SDK, 64) in rates:
        ratio, basis = versus(SDK), f"vs {SDK}"
    else:
        ratio, basis = versus(RAW_HTTPX), "openai SDK missing: vs raw httpx.AsyncClient"
    target = Target(
        "64-in-flight throughput, guardedllm AsyncClient (default transport)",
        ratio,
        GOAL,
        higher_is_better=True,
        basis=f"{basis}, {server_kind} server in another process",
    )
    return [section], [target]


def main() -> None:
    from _harness import render

    mode = QUICK if "--quick" in sys.argv else FULL
    kind = "fake" if "--server" in sys.argv and "fake" in sys.argv else "raw"
    sections, targets = run(mode, kind)
    print(render(sections))
    for target in targets:
        print(target.line())


if __name__ == "__main__":
    main()
