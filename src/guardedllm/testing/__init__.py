"""Test your code against real HTTP: ``FakeProvider`` serves the OpenAI, Azure OpenAI,
Anthropic and Gemini wire formats on loopback, with scripted faults.

::

    from guardedllm.testing import FakeProvider

    with FakeProvider() as fake:
        fake.script(model="gpt-4o-mini", times=1, status=529)
        ...

With pytest, the ``fake_provider`` fixture (registered by guardedllm's pytest plugin) gives a
started ``FakeProvider`` per test.
"""

from __future__ import annotations

from guardedllm.testing._journal import RecordedRequest
from guardedllm.testing._provider import FakeProvider
from guardedllm.testing._script import (
    Behaviour,
    Endpoint,
    ScriptedToolCall,
    ScriptedUsage,
    ScriptRule,
    Vendor,
)

__all__ = [
    "Behaviour",
    "Endpoint",
    "FakeProvider",
    "RecordedRequest",
    "ScriptRule",
    "ScriptedToolCall",
    "ScriptedUsage",
    "Vendor",
]
