"""``guardedllm simulate`` over a large synthetic log: wall time and peak memory.

Run on demand (not a test):  python benchmarks/bench_simulate.py [--requests 100000]

A seeded generator writes a traffic log to a temporary directory: ordinary chat requests (a
system prompt from a handful, one to six turns of English-like text, ~20-2,000 tokens each,
some with tools and max_tokens) spread over one day, as OpenAI request bodies with a timestamp
(70 %), recorder ``call`` lines with their body and the vendor's usage (20 %) and Batch API
input lines (10 %). Each run is a child process comparing a deployment on o200k_base with one
on cl100k_base (two tokenizers: the most counting a run does): ``guardedllm simulate`` as a user
runs it (a worker process per CPU for a log this size), and the same simulation in one process
(``replay(workers=1)``), for the full log and for a tenth of it. Reported: wall times and peak
RSS; the one-process difference between the full log and a tenth of it is what the log's length
costs (the per-request arrays, not the log).

``benchmarks/run.py`` runs it as the ``simulate`` measurement through ``run(mode)``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIG = """
[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[models.gpt-4o-mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
rpm = 5000
tpm = 4000000

[models.gpt-4-turbo]
provider = "openai"
model = "gpt-4-turbo-2024-04-09"
tokenizer = "cl100k_base"
context_window = 128000
max_output_tokens = 4096
input_usd_per_mtok = 10.0
output_usd_per_mtok = 30.0
rpm = 500
tpm = 800000

[routes.chat]
fallback = ["gpt-4o-mini", "gpt-4-turbo"]
max_cost_usd = 0.25
"""

VOCABULARY = (
    "the order service retries a payment call when provider answers with an error but retry "
    "sometimes lands after customer already clicked pay again so we see duplicate charges in "
    "roughly one of thousand checkouts log idempotency key on each attempt please explain why "
    "this happens and how to fix it without losing requests database connection pool timeout "
    "queue worker deploy rollback feature flag latency budget cache invalidation schema "
    "migration index query plan memory leak thread lock deadlock race condition test coverage "
    "monitoring alert dashboard incident postmortem customer support ticket refund invoice "
    "subscription plan upgrade downgrade email notification webhook signature verification "
    "token expiry session cookie browser mobile app release version changelog documentation"
)
WORDS = VOCABULARY.split()

SYSTEMS = [
    "You are a helpful support assistant for an online shop. Answer briefly and politely.",
    "You are a senior backend engineer. Answer precisely, cite the line of code you mean.",
    "Summarise the customer's ticket in three bullet points, then suggest a reply.",
    "Classify the message into one of: billing, shipping, account, other. Reply in JSON.",
    "You translate product descriptions into plain English for a general audience.",
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by its id",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "the id"}},
                "required": ["order_id"],
            },
        },
    }
]

DAY_S = 86_400.0
START = 1_764_806_400.0  # 2025-12-04 00:00 UTC


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words)) + "."


def body(rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": rng.choice(SYSTEMS)}]
    for turn in range(rng.randint(1, 6)):
        if turn:
            messages.append({"role": "assistant", "content": text(rng, rng.randint(10, 200))})
        words = min(1_500, int(rng.paretovariate(1.2) * 15))  # a long tail, up to ~2k tokens
        messages.append({"role": "user", "content": text(rng, words)})
    request: dict[str, Any] = {"model": "chat", "messages": messages}
    if rng.random() < 0.2:
        request["tools"] = TOOLS
    if rng.random() < 0.5:
        request["max_tokens"] = rng.choice([256, 512, 1024, 4096])
    return request


def write_log(path: Path, requests: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as file:
        for index in range(requests):
            moment = START + DAY_S * index / requests
            request = body(rng)
            kind = rng.random()
            if kind < 0.7:
                line: dict[str, Any] = {**request, "timestamp": moment}
            elif kind < 0.9:
                line = {
                    "v": 1,
                    "kind": "call",
                    "id": f"{index:016x}",
                    "time": moment,
                    "requested": "chat",
                    "route": "chat",
                    "deployment": "gpt-4o-mini",
                    "request": {"messages": len(request["messages"])},
                    "body": request,
                    "outcome": {"status": "ok", "input_tokens": 500, "output_tokens": 180},
                }
            else:
                line = {
                    "custom_id": str(index),
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": request,
                }
            file.write(json.dumps(line) + "\n")


CHILD = """
import json, resource, sys
from guardedllm.cli import main
from guardedllm.release import replay
config, log, out, workers = sys.argv[1:]
if workers == "default":  # the command as a user runs it
    status = main(["simulate", config, "--traffic", log, "--baseline", "gpt-4o-mini",
                   "--candidate", "gpt-4-turbo", "--json", out])
else:
    replay(config, env=None, baseline="gpt-4o-mini", candidate="gpt-4-turbo", traffic=[log],
           workers=int(workers))
    status = 0
usage = {who: resource.getrusage(getattr(resource, who)) for who in ("RUSAGE_SELF",
         "RUSAGE_CHILDREN")}
rss = {who: u.ru_maxrss / 1024 for who, u in usage.items()}
cpu = sum(u.ru_utime + u.ru_stime for u in usage.values())
print(json.dumps({"status": status, "cpu_s": cpu, **rss}), file=sys.stderr)
"""


def simulate(
    directory: Path, log: Path, workers: str = "default"
) -> tuple[float, float, float, float]:
    """Wall seconds of one child process simulating ``log``, its CPU seconds with its workers'
    (what a loaded machine changes less), its peak RSS in MB and its largest worker's (0
    without workers)."""
    config = directory / "bench.toml"
    config.write_text(CONFIG, encoding="utf-8")
    command = [sys.executable, "-c", CHILD, str(config), str(log), str(directory / "out.json")]
    began = time.perf_counter()
    done = subprocess.run(
        [*command, workers], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"simulate failed: {done.stderr.decode()}")
    usage = json.loads(done.stderr.decode().splitlines()[-1])
    return wall, usage["cpu_s"], usage["RUSAGE_SELF"], usage["RUSAGE_CHILDREN"]


def measure(requests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="guardedllm-bench-") as name:
        directory = Path(name)
        small, large = directory / "small.jsonl", directory / "large.jsonl"
        write_log(small, requests // 10)
        write_log(large, requests)
        _, _, small_rss, _ = simulate(directory, small, workers="1")
        alone_wall, alone_cpu, alone_rss, _ = simulate(directory, large, workers="1")
        wall, cpu, rss, worker_rss = simulate(directory, large)
        return {
            "requests": requests,
            "log_mb": large.stat().st_size / 1e6,
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_mb": rss,
            "worker_rss_mb": worker_rss,
            "alone_wall_s": alone_wall,
            "alone_cpu_s": alone_cpu,
            "alone_rss_mb": alone_rss,
            "tenth_rss_mb": small_rss,
        }


def run(mode: Any) -> tuple[list[Any], list[Any]]:
    """The ``simulate`` measurement of ``benchmarks/run.py`` (``mode`` is a ``_harness.Mode``):
    100,000 requests in full mode, 20,000 in quick mode."""
    from _harness import Section, Target

    requests = 20_000 if mode.name == "quick" else 100_000
    figures = measure(requests)
    section = Section(f"Simulate: {requests:,} requests, two tokenizers")
    section.add("wall time, guardedllm simulate (a worker per CPU)", [figures["wall_s"]], "s")
    section.add("CPU time, its processes together", [figures["cpu_s"]], "s")
    section.add("peak RSS, its main process", [figures["rss_mb"]], "MB")
    section.add("peak RSS, its largest worker", [figures["worker_rss_mb"]], "MB")
    section.add("wall time, one process", [figures["alone_wall_s"]], "s")
    section.add("CPU time, one process", [figures["alone_cpu_s"]], "s")
    section.add("peak RSS, one process", [figures["alone_rss_mb"]], "MB")
    section.add(
        f"peak RSS, one process, {requests // 10:,} requests", [figures["tenth_rss_mb"]], "MB"
    )
    section.notes.append(f"log of {figures['log_mb']:.0f} MB")
    per_100k = 100_000 / requests
    targets = [
        Target(
            "simulate wall time per 100,000 requests",
            figures["wall_s"] * per_100k,
            60.0,
            higher_is_better=False,
            basis="2 tokenizers; the issue's bound on 2 cores",
            unit="s",
        ),
        Target(
            "simulate memory growth per 100,000 requests (log streamed)",
            (figures["alone_rss_mb"] - figures["tenth_rss_mb"]) / 0.9 * per_100k,
            50.0,
            higher_is_better=False,
            basis="peak RSS of one process, full log minus a tenth of it",
            unit="MB",
        ),
    ]
    return [section], targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    figures = measure(args.requests)
    print(
        f"{figures['requests']:,} requests ({figures['log_mb']:.0f} MB), guardedllm simulate: "
        f"{figures['wall_s']:.1f} s wall ({figures['cpu_s']:.1f} s CPU), peak RSS "
        f"{figures['rss_mb']:.0f} MB (main) and {figures['worker_rss_mb']:.0f} MB (largest "
        f"worker); in one process: {figures['alone_wall_s']:.1f} s wall "
        f"({figures['alone_cpu_s']:.1f} s CPU), {figures['alone_rss_mb']:.0f} MB, and "
        f"{figures['tenth_rss_mb']:.0f} MB for a tenth of the requests"
    )


if __name__ == "__main__":
    main()
