"""Routing on every call, against a local FakeProvider: a sticky A/B split with a shadow
candidate, a small model that escalates, a capability check, and a policy for a block of code.

Run it with ``python examples/routing_against_fake.py`` (no keys, no network). It adds two
routes to examples/guardedllm.toml and prints, for each call, what ``resp.guard`` says.
"""

from __future__ import annotations

import time
from pathlib import Path

import guardedllm
from guardedllm import Policy
from guardedllm.testing import FakeProvider

CONFIG = Path(__file__).with_name("guardedllm.toml")

ROUTES = """
[routes.ab-test]                 # 90/10, sticky per user; 1 call in 2 copied to a candidate
split = { "gpt-4o-mini" = 90, "claude-haiku" = 10 }
shadow = { deployment = "gpt-4o", sample = 0.5, max_in_flight = 4 }

[routes.answer]                  # the small model first; the large one when it is not enough
fallback = ["gpt-4o-mini"]
escalate_to = "gpt-4o"
"""


def main() -> None:
    with FakeProvider() as fake:
        text = CONFIG.read_text().replace("https://api.openai.com/v1", fake.openai_base_url)
        text = text.replace("https://api.anthropic.com", fake.anthropic_base_url)
        registry = guardedllm.Registry.from_toml_text(text + ROUTES, env="prod")
        environ = {"OPENAI_API_KEY": "sk-example", "ANTHROPIC_API_KEY": "sk-ant-example"}
        hello = [{"role": "user", "content": "Hello!"}]

        with guardedllm.Client(registry, environ=environ) as client:
            # The same user always lands on the same arm, in every process.
            for user in ("alice", "bob", "carol", "alice"):
                resp = client.chat.completions.create(model="ab-test", messages=hello, user=user)
                print(f"{user}: {resp.guard.deployment}; {resp.guard.decisions[0]}")

            # The small model is cut off at its token limit: the call escalates.
            fake.script(model="gpt-4o-mini-2024-07-18", finish_reason="length", times=1)
            resp = client.chat.completions.create(model="answer", messages=hello, max_tokens=5)
            print(resp.guard.explain())

            # JSON output: claude-haiku does not declare "json", so nothing is sent to it.
            sent = len(fake.requests)
            try:
                client.chat.completions.create(
                    model="claude-haiku",
                    messages=hello,
                    response_format={"type": "json_object"},
                )
            except guardedllm.errors.NoRouteError as refused:
                print("refused before sending:", refused.excluded["claude-haiku"])
            assert len(fake.requests) == sent

            # A policy for a block: only claude-haiku may serve these calls.
            with guardedllm.policy_scope(Policy(allowed_deployments=["claude-haiku"])):
                resp = client.chat.completions.create(model="ab-test", messages=hello)
                print("in the scope:", resp.guard.deployment)

            deadline = time.monotonic() + 5  # shadow copies run in the background
            while client.shadow_stats()["ab-test"].in_flight and time.monotonic() < deadline:
                time.sleep(0.01)
            stats = client.shadow_stats()["ab-test"]
            print(f"shadow copies: {stats.sent} sent, {stats.answered} answered")
            assert stats.sent == stats.answered


if __name__ == "__main__":
    main()
