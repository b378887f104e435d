"""What a routing decision costs, next to one raw httpx request through a MockTransport.

The policy composes five routes: ``front`` has rules (a tag, and short prompts with vision),
leading to ``ab`` (a 90/10 sticky split of two fallback chains), ``small-first`` (a fallback
that escalates to ``big``) and ``cheap`` (cheapest of three), and ``front`` itself shadows a
candidate. Each sample plans calls with a different sticky key and the paid-tier tag, so the
rules, the split and the capability check all run. Both candidates are timed in the same
interleaved rounds (see ``_harness.py``); the figure is µs per decision and its ratio to the
raw request.

Run alone:  python benchmarks/bench_routing.py [--quick]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
from _harness import Mode, Section, Target, interleave, run_alone
from _payloads import MESSAGES, MOCK_BASE_URL, REQUEST_BODY, REQUEST_HEADERS, completion_handler

from guardedllm.policy import Policy
from guardedllm.registry import Registry
from guardedllm.routing import RouteFeatures, plan_route
from guardedllm.types import ChatRequest

URL = MOCK_BASE_URL + "/chat/completions"


def _model(model: str, usd_in: float, usd_out: float) -> str:
    return f"""
provider = "openai"
model = "{model}"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = {usd_in}
output_usd_per_mtok = {usd_out}
capabilities = ["tools", "vision", "json"]
"""


CONFIG = f"""
[providers.openai]
kind = "openai"

[models.mini]{_model("gpt-4o-mini", 0.15, 0.6)}
[models.big]{_model("gpt-4o", 2.5, 10.0)}
[models.nano]{_model("gpt-4.1-nano", 0.1, 0.4)}
[models.candidate]{_model("gpt-4.1-mini", 0.4, 1.6)}

[routes.chain-a]
fallback = ["mini", "big"]

[routes.ab]
split = {{ chain-a = 90, cheap = 10 }}

[routes.cheap]
strategy = "cheapest"
fallback = ["big", "mini", "nano"]

[routes.small-first]
fallback = ["nano"]
escalate_to = "big"

[routes.front]
fallback = ["big"]
shadow = {{ deployment = "candidate", sample = 0.05 }}

[[routes.front.rules]]
when = {{ tags = {{ tier = "paid" }} }}
use = "ab"

[[routes.front.rules]]
when = {{ max_input_tokens = 2000, capabilities = ["vision"] }}
use = "small-first"
"""


def candidates() -> dict[str, Callable[[], object]]:
    registry = Registry.from_toml_text(CONFIG)
    request = ChatRequest(model="front", messages=tuple(MESSAGES), max_tokens=200)
    policy = Policy()
    keys = itertools.cycle([f"user-{n}" for n in range(1000)])

    def decide() -> object:
        features = RouteFeatures(tags={"tier": "paid"}, key=next(keys))
        return plan_route(registry, request, policy, features=features, latencies={}, now=0.0)

    raw = httpx.Client(transport=httpx.MockTransport(completion_handler))
    return {
        "raw httpx request (MockTransport)": lambda: raw.post(
            URL, json=REQUEST_BODY, headers=REQUEST_HEADERS
        ).json(),
        "routing decision, 5-route policy": decide,
    }


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    samples = interleave(candidates(), mode)
    baseline_label = "raw httpx request (MockTransport)"
    baseline = samples[baseline_label]
    section = Section(title="Routing decision vs one raw httpx request")
    section.add(baseline_label, baseline, "us/call", scale=1e6)
    section.add(
        "routing decision, 5-route policy",
        samples["routing decision, 5-route policy"],
        "us/call",
        scale=1e6,
        baseline=baseline,
        baseline_label=baseline_label,
    )
    # No pass/fail goal: the figure is reported next to the request it routes. Most calls name
    # one model (directly or by alias) and take routing's short path; this is the composed case.
    return [section], []


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
