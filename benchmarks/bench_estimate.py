"""What estimation costs per call, next to a bare tiktoken encode of the same text.

Run on demand (not a test):  python benchmarks/bench_estimate.py [--rounds 30] [--calls 200]

The conversation is ~1k tokens of ordinary chat (system prompt, a few turns, one named
message). Three timings per call:

- ``encode``: ``len(encoding.encode_ordinary(text))`` of all the message texts joined, the least
  any token count can cost;
- ``count_chat_tokens``: the per-message count the library does (one encode per string value);
- ``estimate_request``: the whole pre-flight estimate (count, limits, two cost figures).

Rounds interleave the three (in a rotating order) so drift in CPU frequency or cache state hits
each alike; each round times ``--calls`` calls back to back and records the mean per call. The
medians over rounds are printed with their ratio to ``encode``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from guardedllm.estimate import Prices, count_chat_tokens, estimate_request, get_encoding

PARAGRAPH = (
    "Our order service retries a payment call when the provider answers 503, but the retry "
    "sometimes lands after the customer already clicked pay again, so we see duplicate charges "
    "in roughly one in a thousand checkouts. We log the idempotency key on each attempt. "
)


def conversation() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": "You are a senior backend engineer. Answer precisely, cite the line of "
            "code you mean, and say when you are unsure.",
        }
    ]
    for turn in range(5):
        messages.append({"role": "user", "content": f"Question {turn}: " + PARAGRAPH * 2})
        messages.append({"role": "assistant", "content": f"Answer {turn}: " + PARAGRAPH})
    messages.append({"role": "user", "name": "oncall_bot", "content": PARAGRAPH})
    return messages


def time_per_call(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tokenizer", default="o200k_base")
    args = parser.parse_args()

    encoding = get_encoding(args.tokenizer)
    messages = conversation()
    text = "".join(str(value) for message in messages for value in message.values())
    prices = Prices(input_usd_per_mtok=0.15, output_usd_per_mtok=0.60)

    candidates: dict[str, Callable[[], object]] = {
        "encode": lambda: len(encoding.encode_ordinary(text)),
        "count_chat_tokens": lambda: count_chat_tokens(messages, encoding=encoding),
        "estimate_request": lambda: estimate_request(
            messages,
            max_tokens=500,
            deployment_name="bench",
            tokenizer=args.tokenizer,
            context_window=128_000,
            max_output_tokens=16_384,
            prices=prices,
        ),
    }
    for function in candidates.values():  # warm up: caches, the encoding, branch predictors
        time_per_call(function, args.calls)

    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_per_call(candidates[name], args.calls))

    tokens = count_chat_tokens(messages, encoding=encoding).tokens
    print(
        f"{args.tokenizer}: {len(messages)} messages, {tokens} prompt tokens, "
        f"{len(encoding.encode_ordinary(text))} tokens of joined text; "
        f"{args.rounds} rounds x {args.calls} calls"
    )
    baseline = statistics.median(samples["encode"])
    for name in names:
        median = statistics.median(samples[name])
        print(f"  {name:<18} median {median * 1e6:8.1f} us/call   x{median / baseline:.2f}")


if __name__ == "__main__":
    main()
