"""What estimation costs per call, next to a bare tiktoken encode of the same text.

Run on demand (not a test):  python benchmarks/bench_estimate.py [--rounds 30] [--calls 200]

The conversation is ~1k tokens of ordinary chat (system prompt, a few turns, one named
message). Three timings per call:

- ``encode``: ``len(encoding.encode_ordinary(text))`` of all the message texts joined, the least
  any token count can cost;
- ``count_chat_tokens``: the per-message count the library does (one encode per string value);
- ``estimate_request``: the whole pre-flight estimate (count, limits, two cost figures).

Rounds interleave the three (in a rotating order) so drift in CPU frequency or cache state hits
each alike; each round times ``--calls`` calls back to back and records the mean CPU time per
call (``time.process_time``: other processes on a shared machine disturb it less than wall
time). The medians over rounds are printed with their ratio to ``encode``.

``benchmarks/run.py`` runs it as section 5 through ``run(mode)``.
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
    start = time.process_time()
    for _ in range(calls):
        function()
    return (time.process_time() - start) / calls


def candidates(tokenizer: str) -> dict[str, Callable[[], object]]:
    encoding = get_encoding(tokenizer)
    messages = conversation()
    text = "".join(str(value) for message in messages for value in message.values())
    prices = Prices(input_usd_per_mtok=0.15, output_usd_per_mtok=0.60)
    return {
        "encode": lambda: len(encoding.encode_ordinary(text)),
        "count_chat_tokens": lambda: count_chat_tokens(messages, encoding=encoding),
        "estimate_request": lambda: estimate_request(
            messages,
            max_tokens=500,
            deployment_name="bench",
            tokenizer=tokenizer,
            context_window=128_000,
            max_output_tokens=16_384,
            prices=prices,
        ),
    }


def measure(
    functions: dict[str, Callable[[], object]], *, rounds: int, calls: int
) -> dict[str, list[float]]:
    """CPU seconds per call of each function, one sample per interleaved round."""
    for function in functions.values():  # warm up: caches, the encoding, branch predictors
        time_per_call(function, calls)
    samples: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_per_call(functions[name], calls))
    return samples


def describe(tokenizer: str) -> str:
    encoding = get_encoding(tokenizer)
    messages = conversation()
    text = "".join(str(value) for message in messages for value in message.values())
    tokens = count_chat_tokens(messages, encoding=encoding).tokens
    return (
        f"{tokenizer}: {len(messages)} messages, {tokens} prompt tokens, "
        f"{len(encoding.encode_ordinary(text))} tokens of joined text"
    )


def run(mode: Any) -> tuple[list[Any], list[Any]]:
    """Section 5 of ``benchmarks/run.py`` (``mode`` is a ``_harness.Mode``)."""
    from _harness import Section, Target

    tokenizer = "o200k_base"
    samples = measure(candidates(tokenizer), rounds=mode.rounds, calls=mode.estimate_calls)
    section = Section("5. Estimation CPU (~1k-token chat, exact tokenizer)")
    baseline = samples["encode"]
    for name, values in samples.items():
        label = "bare encode (baseline)" if name == "encode" else name
        section.add(
            label,
            values,
            "us/call",
            scale=1e6,
            baseline=baseline,
            baseline_label="encode",
        )
    section.notes.append(describe(tokenizer))
    ratio = section.ratio("estimate_request")
    target = Target(
        "exact estimation (estimate_request) vs bare tiktoken encode",
        ratio,
        1.2,
        higher_is_better=False,
        basis="same text, o200k_base",
    )
    return [section], [target]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tokenizer", default="o200k_base")
    args = parser.parse_args()

    samples = measure(candidates(args.tokenizer), rounds=args.rounds, calls=args.calls)
    print(f"{describe(args.tokenizer)}; {args.rounds} rounds x {args.calls} calls")
    baseline = statistics.median(samples["encode"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:<18} median {median * 1e6:8.1f} us/call   x{median / baseline:.2f}")


if __name__ == "__main__":
    main()
