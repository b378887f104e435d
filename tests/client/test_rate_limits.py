"""Rate limits through every driver, against FakeProvider: rpm/tpm from the config, counted with
each deployment's own tokenizer, waited for within the call's deadline or refused before
sending, and learned from the vendor's rate-limit headers.

The limiter is a token bucket per limit (``guards/ratelimit.py``): it holds one minute's
allowance and refills continuously, so a deployment may burst a full minute's worth and then
runs at its rate. What these tests hold it to is exactly that: replaying the calls granted
through such a bucket never takes it below zero. Most scenarios run on virtual time (the
clients' injected ``clock`` and ``sleep``), so waits are asserted to the microsecond and cost
nothing; one runs concurrently on real time, with a rate fast enough to take about a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import httpx
import pytest

from guardedllm import Client, Policy, Registry
from guardedllm.errors import RateLimitedError
from guardedllm.state import MemoryBackend, StateBackend
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from session import Session, VirtualClock, open_session
from support import ENVIRON, GUARD_STATE, Streamed

# Every guard decision here holds alike on in-process and shared (Redis) state, except where
# a test moves the guards' time by hand (``virtual_time``).
pytestmark = pytest.mark.usefixtures("on_both_backends")

# A text the two encodings count differently: 26 input tokens with o200k_base, 32 with
# cl100k_base, so each deployment's limit must be counted with its own tokenizer.
MESSAGES = [{"role": "user", "content": "Où est mon colis? Привет, как дела? 你好世界 ¿Qué tal?"}]
MAX_TOKENS = 34

MINI_ID = "gpt-4o-mini-2024-07-18"
TURBO_ID = "gpt-3.5-turbo-0125"
OPEN_ID = "gpt-4o-2024-08-06"
BUSY_ID = "gpt-4-0613"
LIMITED_ID = "gpt-4o-mini-rpm"
CLAUDE_ID = "claude-3-5-haiku-20241022"

MINI_TPM = 300  # five calls of 60 tokens; then one every 12 s
TURBO_TPM = 264  # four calls of 66 tokens; then one every 15 s
BUSY_TPM = 36_000  # 600 tokens a second: real time, for the concurrent scenario
LIMITED_RPM = 2

CONFIG = """
[defaults]
deadline_s = 60
max_attempts = 2
timeout_s = 5

[providers.openai]
kind = "openai"
base_url = "{openai}"
api_key_env = "TEST_OPENAI_KEY"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "TEST_ANTHROPIC_KEY"

[models.mini-o200k]
provider = "openai"
model = "{mini}"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
rpm = 600
tpm = {mini_tpm}

[models.turbo-cl100k]
provider = "openai"
model = "{turbo}"
tokenizer = "cl100k_base"
context_window = 16385
max_output_tokens = 4096
input_usd_per_mtok = 0.50
output_usd_per_mtok = 1.50
rpm = 600
tpm = {turbo_tpm}

[models.busy-cl100k]
provider = "openai"
model = "{busy}"
tokenizer = "cl100k_base"
context_window = 8192
max_output_tokens = 4096
input_usd_per_mtok = 30.0
output_usd_per_mtok = 60.0
tpm = {busy_tpm}

[models.rpm-limited]
provider = "openai"
model = "{limited}"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
rpm = {limited_rpm}

[models.unlimited]
provider = "openai"
model = "{open}"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 2.50
output_usd_per_mtok = 10.00

[models.claude-haiku]
provider = "anthropic"
model = "{claude}"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4.00

[routes.shared]
fallback = ["mini-o200k", "turbo-cl100k"]
"""

VENDOR_IDS = {
    "mini-o200k": MINI_ID,
    "turbo-cl100k": TURBO_ID,
    "busy-cl100k": BUSY_ID,
    "rpm-limited": LIMITED_ID,
    "unlimited": OPEN_ID,
    "claude-haiku": CLAUDE_ID,
}


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    text = CONFIG.format(
        openai=fake_provider.openai_base_url,
        anthropic=fake_provider.anthropic_base_url,
        mini=MINI_ID,
        turbo=TURBO_ID,
        busy=BUSY_ID,
        limited=LIMITED_ID,
        open=OPEN_ID,
        claude=CLAUDE_ID,
        mini_tpm=MINI_TPM,
        turbo_tpm=TURBO_TPM,
        busy_tpm=BUSY_TPM,
        limited_rpm=LIMITED_RPM,
    )
    return Registry.from_toml_text(text, source="rate-limit-config")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def tokens_of(session: Session, model: str, **kwargs: Any) -> int:
    """What one call to ``model`` takes from its tpm bucket: the engine's estimate of the
    input plus the output reserved."""
    estimate = session.estimate(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, **kwargs)
    assert estimate.deployment == model
    return estimate.input_tokens + estimate.max_output_tokens


def bill_what_was_reserved(
    fake: FakeProvider,
    model: str,
    tokens: int,
    *,
    times: int | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Make the fake report exactly the tokens reserved, so that no correction to the usage
    blurs the count (and, with ``headers``, send those rate-limit headers too)."""
    fake.script(
        model=VENDOR_IDS[model],
        times=times,
        headers=headers,
        usage={"prompt_tokens": tokens - MAX_TOKENS, "completion_tokens": MAX_TOKENS},
    )


def assert_conforms(grants: list[tuple[float, int]], *, tpm: int) -> None:
    """Replay ``(time, tokens)`` grants through a bucket of ``tpm`` tokens refilling ``tpm``
    a minute, full at the first grant: the limit holds iff the level never drops below 0."""
    assert grants, "nothing was granted: the scenario did not run"
    level, last = float(tpm), min(grants)[0]
    for at, tokens in sorted(grants):
        level = min(float(tpm), level + (at - last) * tpm / 60)
        last = at
        level -= tokens
        assert level >= -1e-6, f"{tokens} tokens granted at {at} with {level + tokens:.3f} left"


def deployment_of(result: ChatCompletion | Streamed | BaseException) -> str:
    if isinstance(result, BaseException):
        return type(result).__name__
    return result.guard.deployment


def call(session: Session, model: str, **kwargs: Any) -> ChatCompletion | Streamed:
    return session.create(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, **kwargs)


# --------------------------------------------------------------------------- tpm from config


def test_each_deployment_counts_with_its_own_tokenizer(
    driver: str, registry: Registry, clock: VirtualClock
) -> None:
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        assert tokens_of(session, "mini-o200k") == 26 + MAX_TOKENS
        assert tokens_of(session, "turbo-cl100k") == 32 + MAX_TOKENS


@pytest.mark.virtual_time
def test_calls_over_the_tpm_wait_within_their_deadline(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        tokens = tokens_of(session, "mini-o200k")
        bill_what_was_reserved(fake_provider, "mini-o200k", tokens)
        start = clock.now()
        grants: list[tuple[float, int]] = []
        for _ in range(12):
            response = call(session, "mini-o200k")
            assert [a.outcome for a in response.guard.attempts] == ["ok"]
            grants.append((clock.now(), tokens))

    assert len(fake_provider.requests) == 12
    assert_conforms(grants, tpm=MINI_TPM)
    # A burst of a full minute's allowance (300 / 60 = 5 calls), then one call per 60 tokens
    # of refill at 5 tokens a second: 12 s each, slept exactly, never more.
    refill_s = tokens / (MINI_TPM / 60)
    assert refill_s == 12
    assert [at - start for at, _ in grants] == pytest.approx(
        [0.0] * 5 + [refill_s * n for n in range(1, 8)], abs=1e-4
    )
    assert clock.sleeps == pytest.approx([refill_s] * 7, abs=1e-4)


@pytest.mark.virtual_time
def test_a_wait_past_the_deadline_fails_at_once_and_sends_nothing(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        tokens = tokens_of(session, "mini-o200k")
        bill_what_was_reserved(fake_provider, "mini-o200k", tokens)
        for _ in range(MINI_TPM // tokens):
            call(session, "mini-o200k")
        refused = session.outcome(
            model="mini-o200k",
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            policy=Policy(deadline_s=10),
        )
        sent_before = len(fake_provider.requests)
        slept_before = list(clock.sleeps)
        # The same call with two seconds more than the 12 s wait goes through.
        call(session, "mini-o200k", policy=Policy(deadline_s=14))

    assert isinstance(refused, RateLimitedError)
    assert refused.status is None
    assert refused.deployment == "mini-o200k"
    assert refused.retry_after == pytest.approx(12, abs=1e-4)
    assert "local tpm limit" in str(refused)
    assert "Nothing was sent" in str(refused)
    assert [(a.deployment, a.outcome) for a in refused.attempts] == [("mini-o200k", "skipped")]
    assert sent_before == 5
    assert slept_before == []
    assert len(fake_provider.requests) == 6
    assert clock.sleeps == pytest.approx([12], abs=1e-4)


def test_a_request_larger_than_the_tpm_is_never_sent(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        refused = session.outcome(model="mini-o200k", messages=MESSAGES, max_tokens=MINI_TPM)

    assert isinstance(refused, RateLimitedError)
    assert refused.retry_after is None
    assert "can never be sent" in str(refused)
    assert fake_provider.requests == []
    assert clock.sleeps == []


@pytest.mark.virtual_time
def test_two_deployments_share_the_traffic_each_within_its_own_tpm(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    short = Policy(deadline_s=5)  # shorter than either deployment's refill of one call
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        mini = tokens_of(session, "mini-o200k")
        turbo = tokens_of(session, "turbo-cl100k")
        bill_what_was_reserved(fake_provider, "mini-o200k", mini)
        bill_what_was_reserved(fake_provider, "turbo-cl100k", turbo)
        results: list[tuple[float, ChatCompletion | Streamed | BaseException]] = []
        for round_ in range(3):
            if round_:
                clock.advance(30)
            for _ in range(12):
                outcome = session.outcome(
                    model="shared", messages=MESSAGES, max_tokens=MAX_TOKENS, policy=short
                )
                results.append((clock.now(), outcome))
                if isinstance(outcome, RateLimitedError):
                    break

    served = [deployment_of(result) for _, result in results]
    # Five calls of 60 fill mini's 300; four of 66 fill turbo's 264; then both refuse, since
    # the next slot (12 s and 15 s away) is past the 5 s deadline. Thirty seconds later mini
    # has 150 tokens (two calls, 30 left over) and turbo 132 (two calls); thirty more, and
    # mini has 180 (three calls) and turbo 132 again.
    assert served == (
        ["mini-o200k"] * 5 + ["turbo-cl100k"] * 4 + ["RateLimitedError"]
        + ["mini-o200k"] * 2 + ["turbo-cl100k"] * 2 + ["RateLimitedError"]
        + ["mini-o200k"] * 3 + ["turbo-cl100k"] * 2 + ["RateLimitedError"]
    )  # fmt: skip
    assert clock.sleeps == []  # every wait was past the deadline: refused, never slept
    for model, tokens, tpm in [("mini-o200k", mini, MINI_TPM), ("turbo-cl100k", turbo, TURBO_TPM)]:
        grants = [(at, tokens) for at, result in results if deployment_of(result) == model]
        assert_conforms(grants, tpm=tpm)
        assert len(fake_provider.requests_for(model=VENDOR_IDS[model])) == len(grants)
    both_refused = [r for _, r in results if isinstance(r, RateLimitedError)]
    for error in both_refused:
        assert [(a.deployment, a.outcome) for a in error.attempts] == [
            ("mini-o200k", "skipped"),
            ("turbo-cl100k", "skipped"),
        ]
    # The first refusal is raised: mini's, whose next 60 tokens were 12 s of refill away
    # (then 6 s: 30 tokens were left over).
    assert {e.deployment for e in both_refused} == {"mini-o200k"}
    assert [e.retry_after for e in both_refused] == pytest.approx([12, 6, 12], abs=1e-4)


@pytest.mark.virtual_time
def test_the_rpm_holds_calls_to_its_rate(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        for _ in range(LIMITED_RPM):
            call(session, "rpm-limited")
        refused = session.outcome(
            model="rpm-limited", messages=MESSAGES, max_tokens=5, policy=Policy(deadline_s=20)
        )
        call(session, "rpm-limited")  # the 60 s default deadline covers the 30 s wait

    assert isinstance(refused, RateLimitedError)
    assert "local rpm limit" in str(refused)
    assert refused.retry_after == pytest.approx(30, abs=1e-4)
    assert len(fake_provider.requests) == LIMITED_RPM + 1
    assert clock.sleeps == pytest.approx([30], abs=1e-4)


def test_concurrent_callers_never_take_more_than_the_refill(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    # Real time. The vendor reports no tokens left, which empties the bucket; from then on
    # tokens arrive at BUSY_TPM / 60 = 600 a second, and ten callers at once share them.
    callers = 10
    with open_session(driver, registry) as session:
        tokens = tokens_of(session, "busy-cl100k")
        empty = {"x-ratelimit-remaining-tokens": "0"}
        bill_what_was_reserved(fake_provider, "busy-cl100k", tokens, times=1, headers=empty)
        bill_what_was_reserved(fake_provider, "busy-cl100k", tokens)
        drained_from = time.monotonic()
        call(session, "busy-cl100k")
        results = session.many(
            callers, model="busy-cl100k", messages=MESSAGES, max_tokens=MAX_TOKENS
        )
        done_at = time.monotonic()

    assert all(isinstance(r, ChatCompletion) for r in results), results
    received = sorted(r.received_at for r in fake_provider.requests[1:])
    assert len(received) == callers
    rate = BUSY_TPM / 60
    for count, at in enumerate(received, start=1):
        # By the time the fake received the count-th request, the bucket, empty since the
        # first response, cannot have refilled less than the tokens granted so far.
        assert count * tokens <= rate * (at - drained_from) + 1e-6
    # Nobody waited much longer than the refill needed (generous slack for a loaded machine).
    assert done_at - drained_from < callers * tokens / rate + 2.0


# --------------------------------------------------------------------------- learned limits


@pytest.mark.virtual_time
def test_the_tpm_is_learned_from_openai_headers_when_config_sets_none(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    headers = {
        "x-ratelimit-limit-tokens": "1200",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "30s",
    }
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        tokens = tokens_of(session, "unlimited")
        bill_what_was_reserved(fake_provider, "unlimited", tokens, times=1, headers=headers)
        bill_what_was_reserved(fake_provider, "unlimited", tokens)
        call(session, "unlimited")
        call(session, "unlimited")
        too_soon = session.outcome(
            model="unlimited",
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            policy=Policy(deadline_s=2),
        )
        call(session, "unlimited")

    # The first answer said: 1200 a minute, none left. The second call waited for its 60
    # tokens at 20 a second (3 s), which left none again; so the next call, with a 2 s
    # deadline, was refused without sending, and the last one waited 3 s too.
    wait = tokens / (1200 / 60)
    assert wait == 3
    assert clock.sleeps == pytest.approx([wait, wait], abs=1e-4)
    assert isinstance(too_soon, RateLimitedError)
    assert too_soon.retry_after == pytest.approx(wait, abs=1e-4)
    assert len(fake_provider.requests) == 3


@pytest.mark.virtual_time
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_the_vendors_none_left_is_not_undone_by_the_usage_correction(
    driver: str,
    registry: Registry,
    fake_provider: FakeProvider,
    clock: VirtualClock,
    stream: bool,
) -> None:
    headers = {
        "x-ratelimit-limit-tokens": "1200",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "30s",
    }
    # The fake's own usage this time: fewer tokens than the call reserved.
    fake_provider.script(model=OPEN_ID, times=1, headers=headers)
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        tokens = tokens_of(session, "unlimited")
        first = call(session, "unlimited", stream=stream)
        assert first.guard.cost_usd is not None
        assert first.guard.cost_usd < first.guard.estimate.cost_usd_max  # used less
        call(session, "unlimited")

    # The answer said none were left, at 1200 a minute: the next call's tokens are a full
    # refill away, whatever the first call turned out to use.
    assert clock.sleeps == pytest.approx([tokens / (1200 / 60)], abs=1e-4)


@pytest.mark.virtual_time
def test_the_rpm_is_learned_from_openai_headers(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    fake_provider.script(
        model=OPEN_ID,
        times=1,
        headers={
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s",
        },
    )
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        call(session, "unlimited")
        call(session, "unlimited")

    assert clock.sleeps == pytest.approx([1.0], abs=1e-4)
    assert len(fake_provider.requests) == 2


@pytest.mark.virtual_time
def test_the_vendors_remaining_count_lowers_a_configured_bucket(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    # Another client sharing the account spent most of the minute: the vendor has 90 of
    # mini's 300 tokens left. Our own count alone would still hold 240.
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        tokens = tokens_of(session, "mini-o200k")
        vendor = {"x-ratelimit-remaining-tokens": "90"}
        bill_what_was_reserved(fake_provider, "mini-o200k", tokens, times=1, headers=vendor)
        bill_what_was_reserved(fake_provider, "mini-o200k", tokens)
        for _ in range(3):
            call(session, "mini-o200k")

    # 90 left: the second call takes 60, the third waits for the 30 missing at 5 a second.
    assert clock.sleeps == pytest.approx([(tokens - (90 - tokens)) / (MINI_TPM / 60)], abs=1e-4)
    assert len(fake_provider.requests) == 3


@pytest.mark.virtual_time
def test_the_tpm_is_learned_from_anthropic_headers(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    reset = datetime.now(timezone.utc) + timedelta(seconds=30)
    headers = {
        "anthropic-ratelimit-tokens-limit": "6000",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        first = tokens_of(session, "claude-haiku")
        bill_what_was_reserved(fake_provider, "claude-haiku", first, times=1, headers=headers)
        call(session, "claude-haiku")
        # The estimate of the next call, after calibration learned from the first answer.
        second = tokens_of(session, "claude-haiku")
        bill_what_was_reserved(fake_provider, "claude-haiku", second)
        call(session, "claude-haiku")

    # 6000 a minute, none left (full again in 30 s): the second call waits for its own
    # tokens at 100 a second.
    assert clock.sleeps == pytest.approx([second / (6000 / 60)], abs=1e-4)
    assert len(fake_provider.requests) == 2


# --------------------------------------------------------------------------- abandoned calls

MINI_RPM = 600
TURBO_RPM = 600
# How long a cancellation scenario may take before it is a failure, not a hang.
CANCEL_BOUND_S = 10.0


def levels(state: StateBackend, deployment: str, *, rpm: int, tpm: int, now: float) -> tuple:
    """What the deployment's request and token buckets hold at ``now`` (a take of nothing)."""
    return tuple(
        state.bucket_take(
            f"ratelimit:{deployment}:{kind}", 0, capacity=limit, refill_per_s=limit / 60, now=now
        ).remaining
        for kind, limit in (("requests", rpm), ("tokens", tpm))
    )


def cancel_once_sent(session: Session, fake: FakeProvider, sent: int, **kwargs: Any) -> None:
    """Start a call in the session's event loop and cancel it once the fake has received
    ``sent`` requests of it: the call is abandoned mid-attempt, as a cancelled task is."""

    async def run() -> None:
        with anyio.fail_after(CANCEL_BOUND_S), anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:

                async def cancel_when_sent() -> None:
                    while len(fake.requests) < sent:
                        await anyio.sleep(0.005)
                    scope.cancel()

                group.start_soon(cancel_when_sent)
                await session.client.chat.completions.create(**kwargs)
        assert scope.cancelled_caught, "the call ended before it could be cancelled"

    session.run_async(run)


@pytest.mark.parametrize("driver", ["asyncio", "trio"])
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_cancelled_call_gives_its_tokens_back(
    driver: str,
    registry: Registry,
    fake_provider: FakeProvider,
    clock: VirtualClock,
    stream: bool,
) -> None:
    fake_provider.script(model=MINI_ID, hang=True, times=1)
    state = (GUARD_STATE.get() or MemoryBackend)()
    with open_session(driver, registry, state=state, **clock.client_kwargs(driver)) as session:
        tokens = tokens_of(session, "mini-o200k")
        cancel_once_sent(
            session, fake_provider, 1, model="mini-o200k", messages=MESSAGES,
            max_tokens=MAX_TOKENS, stream=stream,
        )  # fmt: skip
        # On a shared store the cancelled flow's cleanup runs on the client's background
        # runner (never the event loop): it has finished by the time the client has closed.
        if state.shared:
            session.run_async(lambda: anyio.to_thread.run_sync(session.client._background.close))
        # The store's clock runs on in real time: read the levels last written (a take at an
        # earlier time refills nothing) rather than what real time has refilled since.
        now = 0.0 if state.shared else clock.now()
        after = levels(state, "mini-o200k", rpm=MINI_RPM, tpm=MINI_TPM, now=now)
        # A full minute's allowance goes out at once again: five calls, no wait.
        bill_what_was_reserved(fake_provider, "mini-o200k", tokens)
        for _ in range(MINI_TPM // tokens):
            call(session, "mini-o200k")

    # The attempt was sent: the vendor may have counted it, so its request slot stays taken;
    # its tokens, never used by an answer we saw, are all back (as a failed attempt's are).
    assert after == (MINI_RPM - 1, MINI_TPM)
    assert clock.sleeps == []
    assert len(fake_provider.requests) == 1 + MINI_TPM // tokens


@pytest.mark.virtual_time
@pytest.mark.parametrize("driver", ["asyncio", "trio"])
def test_a_cancelled_hedged_call_gives_both_sides_their_tokens_back(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    fake_provider.script(model=MINI_ID, hang=True, times=1)
    fake_provider.script(model=TURBO_ID, hang=True, times=1)
    state = MemoryBackend()
    with open_session(driver, registry, state=state, **clock.client_kwargs(driver)) as session:
        cancel_once_sent(
            session, fake_provider, 2, model="shared", messages=MESSAGES, max_tokens=MAX_TOKENS,
            policy=Policy(hedge_after_s=0.01),
        )  # fmt: skip
        mini = levels(state, "mini-o200k", rpm=MINI_RPM, tpm=MINI_TPM, now=clock.now())
        turbo = levels(state, "turbo-cl100k", rpm=TURBO_RPM, tpm=TURBO_TPM, now=clock.now())

    assert {r.model for r in fake_provider.requests} == {MINI_ID, TURBO_ID}
    assert mini == (MINI_RPM - 1, MINI_TPM)
    assert turbo == (TURBO_RPM - 1, TURBO_TPM)


class CtrlCWhileReading(httpx.BaseTransport):
    """httpx's own transport, except that reading a response's body raises KeyboardInterrupt,
    as a Ctrl-C does in a program blocked on the first chunk of an answer: the request went
    out for real, the answer never reached the caller."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _Interrupted(response.stream)
        return response

    def close(self) -> None:
        self._inner.close()


class _Interrupted(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        raise KeyboardInterrupt

    def close(self) -> None:
        self._inner.close()


@pytest.mark.virtual_time
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_call_interrupted_before_its_answer_gives_its_tokens_back(
    registry: Registry, fake_provider: FakeProvider, clock: VirtualClock, stream: bool
) -> None:
    state = MemoryBackend()
    with Client(
        registry,
        environ=ENVIRON,
        state=state,
        transport=CtrlCWhileReading(),
        **clock.client_kwargs("sync"),
    ) as client:
        with pytest.raises(KeyboardInterrupt):
            client.chat.completions.create(
                model="mini-o200k", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=stream
            )
        after = levels(state, "mini-o200k", rpm=MINI_RPM, tpm=MINI_TPM, now=clock.now())

    assert len(fake_provider.requests) == 1
    assert after == (MINI_RPM - 1, MINI_TPM)


@pytest.mark.virtual_time
def test_a_hedge_that_lost_gives_back_the_tokens_of_the_answer_it_never_gave(
    driver: str, registry: Registry, fake_provider: FakeProvider, clock: VirtualClock
) -> None:
    fake_provider.script(model=MINI_ID, latency=0.3, times=1)  # slow: the hedge wins
    state = MemoryBackend()
    with open_session(driver, registry, state=state, **clock.client_kwargs(driver)) as session:
        response = session.create(
            model="shared",
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            policy=Policy(hedge_after_s=0.01),
        )
        mini = levels(state, "mini-o200k", rpm=MINI_RPM, tpm=MINI_TPM, now=clock.now())

    assert [(a.deployment, a.outcome) for a in response.guard.attempts] == [
        ("mini-o200k", "cancelled"),
        ("turbo-cl100k", "ok"),
    ]
    assert mini == (MINI_RPM - 1, MINI_TPM)
