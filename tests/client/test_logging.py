"""What a call logs on the ``guardedllm`` logger, through every driver: each attempt, retry
and skipped deployment at DEBUG, fallbacks and escalations at INFO, naming the deployment and
the reason, and never a message's content or a key."""

from __future__ import annotations

import logging

import pytest

from guardedllm import Policy, Registry
from guardedllm.errors import BudgetExceededError
from guardedllm.testing import FakeProvider
from support import ENVIRON, Call, config_text, make_call

SECRET_PROMPT = "the launch code is 0000-swordfish"
MESSAGES = [{"role": "user", "content": SECRET_PROMPT}]
ROUTES = """
[routes.small-first]
fallback = ["llama"]
escalate_to = "gpt-4o-mini"
"""


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(config_text(fake_provider) + ROUTES, source="test-config")


@pytest.fixture
def call(driver: str, registry: Registry) -> Call:
    return make_call(driver, registry)


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "guardedllm" and r.levelno == level]


def assert_nothing_secret(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage()
        assert "swordfish" not in text
        assert all(key not in text for key in ENVIRON.values())


def test_a_retry_then_a_fallback_are_logged(
    call: Call, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake_provider.script(model="gpt-4o-mini-2024-07-18", status=503)
    with caplog.at_level(logging.DEBUG, logger="guardedllm"):
        call(model="support", messages=MESSAGES)
    debug = lines(caplog, logging.DEBUG)
    assert "call to support: attempt 1 on gpt-4o-mini" in debug
    assert "call to support: retrying gpt-4o-mini (attempt 2) after HTTP 503" in debug
    assert lines(caplog, logging.INFO) == [
        "call to support: falling back from gpt-4o-mini to claude-haiku after HTTP 503"
    ]
    assert_nothing_secret(caplog)


def test_a_skipped_deployment_is_logged_with_its_reason(
    call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="guardedllm"),
        pytest.raises(BudgetExceededError),
    ):
        call(model="support", messages=MESSAGES, policy=Policy(max_cost_usd=1e-9))
    assert "call to support: skipped gpt-4o-mini (BudgetExceededError)" in lines(
        caplog, logging.DEBUG
    )
    assert_nothing_secret(caplog)


def test_an_escalation_is_logged_at_info(
    call: Call, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake_provider.script(model="llama-3.1-8b-instruct", finish_reason="length")
    with caplog.at_level(logging.INFO, logger="guardedllm"):
        call(model="small-first", messages=MESSAGES, max_tokens=20)
    (escalation,) = lines(caplog, logging.INFO)
    assert escalation == (
        'call to small-first: the answer was cut at its token limit (finish_reason "length"): '
        "escalating to gpt-4o-mini"
    )
    assert lines(caplog, logging.DEBUG) == []  # at INFO, the attempts stay quiet
    assert_nothing_secret(caplog)
