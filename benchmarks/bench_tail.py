"""Tail latency with and without hedging, against an upstream where a few % of calls are 50x
slower (Dean and Barroso, "The Tail at Scale": hedged requests took p99.9 from 1,800 ms to
74 ms for 2 % more requests).

A FakeProvider in this process answers every request after ``FAST_S``, and a seeded share
``SLOW_SHARE`` of them after ``SLOW_S`` (50x): one scripted one-shot latency rule per request,
drawn in advance from ``random.Random(SEED)``, so each configuration meets the same sequence
of slow and fast answers in the order its requests arrive (a hedge draws the next one, as a
second request to a real upstream would). The plan has one deployment, so a hedge is a second
attempt on it. ``CONCURRENCY`` threads share one sync ``Client`` per configuration and make
``calls`` calls in all (after a warm-up that gives the p95 hedge its history), each timed
end to end; the run of one configuration stops early after ``RUN_BUDGET_S``.

Reported per configuration: p50, p99 and p99.9 in ms, and requests sent per call; the
target is p99 at least 3x lower with hedging, for at most 10 % more requests.

Run alone:  python benchmarks/bench_tail.py [--quick]
"""

from __future__ import annotations

import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _harness import Mode, Section, Target, run_alone

from guardedllm import Client, Policy, Registry
from guardedllm.testing import FakeProvider

FAST_S = 0.02
SLOW_S = 50 * FAST_S
SLOW_SHARE = 0.02
SEED = 16
CONCURRENCY = 8
WARMUP_CALLS = 100
CALLS = {"quick": 600, "full": 2000}
RUN_BUDGET_S = 120.0
# A fixed hedge delay: a few times the fast answer, well under the slow one.
FIXED_HEDGE_S = 3 * FAST_S

MODEL_ID = "gpt-4o-mini-2024-07-18"
MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
ENVIRON = {"BENCH_OPENAI_KEY": "sk-bench-0123456789"}

CONFIG = """
[defaults]
deadline_s = 30
max_attempts = 1
timeout_s = 10

[providers.openai]
kind = "openai"
base_url = "{base_url}"
api_key_env = "BENCH_OPENAI_KEY"

[models.mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
"""


def _script(fake: FakeProvider, requests: int) -> None:
    """One one-shot latency rule per request to come, slow for a seeded share of them."""
    draw = random.Random(SEED)
    for _ in range(requests):
        slow = draw.random() < SLOW_SHARE
        fake.script(model=MODEL_ID, latency=SLOW_S if slow else FAST_S, times=1)


def _percentile(sorted_values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``sorted_values`` (at least one value)."""
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _measure(
    fake: FakeProvider, registry: Registry, policy: Policy, calls: int
) -> tuple[list[float], float]:
    """(each call's latency in seconds, requests sent per call) for ``calls`` calls."""
    fake.reset()
    # Rules for the warm-up and the calls, twice over: a hedge draws one too.
    _script(fake, 2 * (WARMUP_CALLS + calls))
    latencies: list[float] = []
    lock = threading.Lock()
    with Client(registry, policy=policy, environ=ENVIRON) as client:

        def one() -> float:
            started = time.monotonic()
            client.chat.completions.create(model="mini", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
            return time.monotonic() - started

        for _ in range(WARMUP_CALLS):  # one at a time: the p95 history, no timing kept
            one()
        time.sleep(SLOW_S)  # let a warm-up loser still in flight arrive before counting
        before = len(fake.requests)
        ends_at = time.monotonic() + RUN_BUDGET_S

        def timed() -> None:
            if time.monotonic() > ends_at:
                return
            latency = one()
            with lock:
                latencies.append(latency)

        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            for _ in range(calls):
                pool.submit(timed)
        time.sleep(SLOW_S)  # the last losers arrive (sync hedges finish in the background)
        sent = len(fake.requests) - before
    return latencies, sent / max(1, len(latencies))


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    calls = CALLS["quick" if mode.name == "quick" else "full"]
    configurations: dict[str, Policy] = {
        "no hedging": Policy(),
        "hedge after p95": Policy(hedge_after_s="p95"),
        f"hedge after {FIXED_HEDGE_S * 1000:.0f} ms": Policy(hedge_after_s=FIXED_HEDGE_S),
    }
    results: dict[str, tuple[list[float], float]] = {}
    with FakeProvider() as fake:
        registry = Registry.from_toml_text(CONFIG.format(base_url=fake.openai_base_url))
        for label, policy in configurations.items():
            results[label] = _measure(fake, registry, policy, calls)

    section = Section(
        title=(
            f"Tail latency: {SLOW_SHARE:.0%} of answers {SLOW_S * 1000:.0f} ms, the rest "
            f"{FAST_S * 1000:.0f} ms (FakeProvider, {CONCURRENCY} threads, one deployment)"
        )
    )
    figures: dict[str, dict[str, float]] = {}
    for label, (latencies, per_call) in results.items():
        ordered = sorted(latencies)
        figure = {
            "p50": _percentile(ordered, 0.50),
            "p99": _percentile(ordered, 0.99),
            "p99.9": _percentile(ordered, 0.999),
        }
        figures[label] = figure
        for name, value in figure.items():
            section.add(f"{label}: {name}", [value], "ms", scale=1e3)
        section.add(f"{label}: requests per call", [per_call], "req/call")
        section.notes.append(f"{label}: {len(latencies)} calls timed")
    base = figures["no hedging"]
    targets: list[Target] = []
    base_sent = results["no hedging"][1]
    for label in list(configurations)[1:]:
        p99_ratio = base["p99"] / figures[label]["p99"]
        extra = results[label][1] / base_sent - 1
        section.notes.append(
            f"{label}: p99 x{p99_ratio:.1f} lower, p99.9 "
            f"x{base['p99.9'] / figures[label]['p99.9']:.1f} lower, for {extra:+.1%} requests"
        )
        targets.append(
            Target(
                goal=f"tail: p99 without hedging / with ({label})",
                value=p99_ratio,
                limit=3.0,
                higher_is_better=True,
                basis=f"{len(results[label][0])} calls each",
            )
        )
        targets.append(
            Target(
                goal=f"tail: extra requests per call ({label})",
                value=extra * 100,
                limit=10.0,
                higher_is_better=False,
                basis="requests the FakeProvider received, per call timed",
                unit="%",
            )
        )
    return [section], targets


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
