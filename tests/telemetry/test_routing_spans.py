"""Routing decisions in telemetry: the escalation and shadow events on the caller's call span,
and a shadow copy's own call span marked with the route it copies."""

from __future__ import annotations

import time

from guardedllm import Client, Registry
from guardedllm.telemetry import EVENT_ESCALATION, EVENT_SHADOW, GUARDEDLLM_NAMES
from guardedllm.testing import FakeProvider
from support import ENVIRON, config_text

from ._recording import Recorded

ROUTES = """
[routes.watched]
fallback = ["llama"]
escalate_to = "gpt-4o-mini"
shadow = { deployment = "gemini-flash", sample = 1.0 }
"""

MESSAGES = [{"role": "user", "content": "Hi there"}]


def test_escalation_and_shadow_are_events_and_the_copy_is_its_own_span(
    recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model="llama-3.1-8b-instruct", finish_reason="length")
    registry = Registry.from_toml_text(config_text(fake_provider) + ROUTES)
    with Client(registry, environ=ENVIRON, telemetry=recorded.telemetry) as client:
        response = client.chat.completions.create(model="watched", messages=MESSAGES)
        deadline = time.monotonic() + 10
        while not client.shadow_results() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert response.guard is not None
    assert response.guard.deployment == "gpt-4o-mini"

    calls = [s for s in recorded.spans() if s.name.startswith("chat ") and s.parent is None]
    by_model = {s.name: s for s in calls}
    primary, copy = by_model["chat watched"], by_model["chat gemini-flash"]
    names = [e.name for e in primary.events]
    assert EVENT_SHADOW in names
    assert EVENT_ESCALATION in names
    (shadow_event,) = [e for e in primary.events if e.name == EVENT_SHADOW]
    assert dict(shadow_event.attributes or {})["guardedllm.shadow.sent"] is True
    (escalation_event,) = [e for e in primary.events if e.name == EVENT_ESCALATION]
    reason = dict(escalation_event.attributes or {})["guardedllm.decision.reason"]
    assert 'finish_reason "length"' in str(reason)
    assert dict(copy.attributes or {})["guardedllm.shadow.of"] == "watched"
    assert "guardedllm.shadow.of" in GUARDEDLLM_NAMES
    assert EVENT_ESCALATION in GUARDEDLLM_NAMES
