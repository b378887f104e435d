"""rpm/tpm buckets on virtual time: grants, waits, corrections, vendor headers, concurrency."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from guardedllm import defaults
from guardedllm.errors import RateLimitedError
from guardedllm.estimate import count_chat_tokens, get_encoding
from guardedllm.guards import RateDecision, RateLimiter, RetryAfter, VendorPause
from guardedllm.state import MemoryBackend, StateBackend

ANTHROPIC_AT = 1_755_780_060.0  # 2025-08-21T12:41:00Z


def about(seconds: float) -> object:
    """A wait as reported: rounded up by a microsecond, so that sleeping it always suffices."""
    return pytest.approx(seconds, abs=1e-5)


def limiter(new_backend: Callable[[], StateBackend]) -> RateLimiter:
    return RateLimiter(new_backend())


def granted_count(
    limits: RateLimiter, *, rpm: int | None, tpm: int | None, tokens: int, now: float
) -> int:
    """How many acquires of ``tokens`` succeed in a row at ``now``."""
    count = 0
    while limits.acquire("d", rpm=rpm, tpm=tpm, tokens=tokens, now=now).granted:
        count += 1
        assert count < 100_000
    return count


# --------------------------------------------------------------------------- acquire


def test_a_full_minute_bursts_then_the_rate_holds(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    assert granted_count(limits, rpm=60, tpm=None, tokens=0, now=0.0) == 60
    refused = limits.acquire("d", rpm=60, tpm=None, tokens=0, now=0.0)
    assert refused == RateDecision(
        granted=False, wait_s=refused.wait_s, limited_by="rpm", reason=refused.reason
    )
    assert refused.wait_s == about(1.0)
    assert not limits.acquire("d", rpm=60, tpm=None, tokens=0, now=0.99).granted
    assert limits.acquire("d", rpm=60, tpm=None, tokens=0, now=0.0 + refused.wait_s).granted


def test_the_tokens_wait_is_what_the_refill_needs(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    assert limits.acquire("d", rpm=None, tpm=600, tokens=500, now=10.0).granted
    refused = limits.acquire("d", rpm=None, tpm=600, tokens=300, now=10.0)
    assert (refused.granted, refused.limited_by) == (False, "tpm")
    assert refused.wait_s == about(20.0)  # 200 missing at 10 per second
    assert "300 tokens needed, 100 of 600 per minute left" in refused.reason
    assert not limits.acquire("d", rpm=None, tpm=600, tokens=300, now=29.9).granted
    assert limits.acquire("d", rpm=None, tpm=600, tokens=300, now=10.0 + refused.wait_s).granted


def test_a_refusal_by_tokens_takes_no_request(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    assert limits.acquire("d", rpm=2, tpm=100, tokens=100, now=0.0).granted
    assert not limits.acquire("d", rpm=2, tpm=100, tokens=50, now=0.0).granted
    # The refused request's slot went back: one of the two is still there.
    assert limits.acquire("d", rpm=2, tpm=100, tokens=0, now=0.0).granted
    assert not limits.acquire("d", rpm=2, tpm=100, tokens=0, now=0.0).granted


def test_a_refusal_by_requests_takes_no_tokens_and_waits_for_both(
    new_backend: Callable[[], StateBackend],
) -> None:
    limits = limiter(new_backend)
    assert limits.acquire("d", rpm=60, tpm=60, tokens=60, now=0.0).granted
    assert granted_count(limits, rpm=60, tpm=60, tokens=0, now=0.0) == 59
    refused = limits.acquire("d", rpm=60, tpm=60, tokens=30, now=0.0)
    assert refused.limited_by == "rpm"
    assert refused.wait_s == about(30.0)  # a slot in 1 s, but 30 tokens in 30 s
    assert limits.acquire("d", rpm=60, tpm=60, tokens=30, now=refused.wait_s).granted


def test_waiting_and_retrying_never_counts_twice(new_backend: Callable[[], StateBackend]) -> None:
    """A caller that is told to wait, sleeps and retries gets exactly one grant per slot."""
    limits = limiter(new_backend)
    now, grants = 0.0, 0
    while now < 120.0:
        decision = limits.acquire("d", rpm=30, tpm=None, tokens=0, now=now)
        if decision.granted:
            grants += 1
        else:
            now += decision.wait_s
    assert grants <= 30 + 30 * 2 + 1  # a minute's burst plus two minutes at 0.5 per second


def test_more_tokens_than_a_minute_holds_can_never_be_sent(
    new_backend: Callable[[], StateBackend],
) -> None:
    limits = limiter(new_backend)
    decision = limits.acquire("d", rpm=10, tpm=1000, tokens=1001, now=0.0)
    assert (decision.granted, decision.wait_s, decision.limited_by) == (False, math.inf, "tpm")
    assert "1001 tokens" in decision.reason
    assert "1000 tokens per minute" in decision.reason
    error = decision.error(deployment="gpt-4o")
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is None
    assert error.deployment == "gpt-4o"
    assert "Lower max_tokens" in str(error)
    # Nothing was taken.
    assert granted_count(limits, rpm=10, tpm=1000, tokens=100, now=0.0) == 10


def test_a_wait_longer_than_the_deadline_becomes_a_rate_limited_error(
    new_backend: Callable[[], StateBackend],
) -> None:
    limits = limiter(new_backend)
    limits.acquire("d", rpm=1, tpm=None, tokens=0, now=0.0)
    decision = limits.acquire("d", rpm=1, tpm=None, tokens=0, now=0.0)
    error = decision.error(deployment="gpt-4o", deadline_left_s=5.0)
    assert error.retry_after == about(60.0)
    assert error.status is None
    message = str(error)
    assert "gpt-4o: local rpm limit" in message
    assert "60 s away, more than the 5 s left" in message
    assert "Nothing was sent" in message


def test_no_limit_means_no_bucket(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    for _ in range(1000):
        assert limits.acquire("d", rpm=None, tpm=None, tokens=10**9, now=0.0).granted


@pytest.mark.parametrize(
    ("rpm", "tpm", "tokens"), [(0, None, 1), (None, -5, 1), (None, None, -1), (True, None, 1)]
)
def test_nonsense_limits_are_programming_errors(
    new_backend: Callable[[], StateBackend], rpm: int, tpm: int, tokens: int
) -> None:
    with pytest.raises(ValueError):
        limiter(new_backend).acquire("d", rpm=rpm, tpm=tpm, tokens=tokens, now=0.0)


def test_deployments_have_their_own_buckets(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    assert limits.acquire("a:b", rpm=1, tpm=None, tokens=0, now=0.0).granted
    assert limits.acquire("a", rpm=1, tpm=None, tokens=0, now=0.0).granted
    assert not limits.acquire("a:b", rpm=1, tpm=None, tokens=0, now=0.0).granted


# --------------------------------------------------------------------------- correct


def test_correcting_down_returns_the_difference(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    assert limits.acquire("d", rpm=None, tpm=1000, tokens=900, now=0.0).granted
    assert not limits.acquire("d", rpm=None, tpm=1000, tokens=500, now=0.0).granted
    limits.correct("d", tpm=1000, reserved_tokens=900, actual_tokens=300, now=0.0)
    assert limits.acquire("d", rpm=None, tpm=1000, tokens=700, now=0.0).granted


def test_correcting_up_takes_the_excess_as_debt(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    assert limits.acquire("d", rpm=None, tpm=600, tokens=600, now=0.0).granted
    limits.correct("d", tpm=600, reserved_tokens=600, actual_tokens=900, now=0.0)
    refused = limits.acquire("d", rpm=None, tpm=600, tokens=100, now=0.0)
    assert refused.wait_s == about(40.0)  # 300 of debt plus 100 at 10 per second


def test_correcting_without_a_limit_does_nothing(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    limits.correct("d", tpm=None, reserved_tokens=10, actual_tokens=10**6, now=0.0)
    assert limits.acquire("d", rpm=None, tpm=None, tokens=1, now=0.0).granted


# --------------------------------------------------------------------------- learn

OPENAI_DOCS_SAMPLE = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
}

ANTHROPIC_RECORDED = {
    "anthropic-ratelimit-input-tokens-limit": "80000",
    "anthropic-ratelimit-input-tokens-remaining": "80000",
    "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-output-tokens-limit": "16000",
    "anthropic-ratelimit-output-tokens-remaining": "16000",
    "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:41:00Z",
    "anthropic-ratelimit-requests-limit": "1000",
    "anthropic-ratelimit-requests-remaining": "999",
    "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-tokens-limit": "96000",
    "anthropic-ratelimit-tokens-remaining": "96000",
    "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:59Z",
}


def test_learning_openai_headers_lowers_the_buckets_to_the_vendors_count(
    new_backend: Callable[[], StateBackend],
) -> None:
    limits = limiter(new_backend)
    learned = limits.learn(
        "d", OPENAI_DOCS_SAMPLE, rpm=60, tpm=150000, now=0.0, wall_now=ANTHROPIC_AT
    )
    assert learned.tokens is not None
    assert learned.tokens.remaining == 149984
    assert not limits.acquire("d", rpm=60, tpm=150000, tokens=149985, now=0.0).granted
    assert limits.acquire("d", rpm=60, tpm=150000, tokens=149984, now=0.0).granted
    assert granted_count(limits, rpm=60, tpm=150000, tokens=0, now=0.0) == 58


def test_learning_never_raises_a_bucket(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    assert granted_count(limits, rpm=60, tpm=None, tokens=0, now=0.0) == 60
    limits.learn("d", OPENAI_DOCS_SAMPLE, rpm=60, tpm=None, now=0.0, wall_now=0.0)
    assert not limits.acquire("d", rpm=60, tpm=None, tokens=0, now=0.0).granted


def test_a_vendor_limit_is_adopted_when_config_sets_none(
    new_backend: Callable[[], StateBackend],
) -> None:
    limits = limiter(new_backend)
    limits.learn("d", ANTHROPIC_RECORDED, rpm=None, tpm=None, now=0.0, wall_now=ANTHROPIC_AT)
    assert granted_count(limits, rpm=None, tpm=None, tokens=0, now=0.0) == 999
    refused = limits.acquire("d", rpm=None, tpm=None, tokens=96001, now=1.0)
    assert refused.wait_s == math.inf  # the adopted tpm, input plus output
    # Forgotten once no response has reported it for the TTL: no limit again.
    later = defaults.LEARNED_LIMIT_TTL_S + 1
    assert limits.acquire("d", rpm=None, tpm=None, tokens=96001, now=later).granted


def test_config_wins_over_the_vendors_limit(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    limits.learn("d", OPENAI_DOCS_SAMPLE, rpm=5, tpm=None, now=0.0, wall_now=0.0)
    assert granted_count(limits, rpm=5, tpm=None, tokens=0, now=0.0) == 5


@pytest.mark.parametrize(
    ("reset", "wait_s"),
    [
        ("1m0s", 1.0),  # a per-minute bucket: the next request a 60th of a minute away
        ("6m0s", 301.0),  # a slower quota: full when the vendor says, never fuller before
        ("20ms", 1.0),
    ],
)
def test_an_exhausted_vendor_limit_waits_for_its_reset(
    new_backend: Callable[[], StateBackend], reset: str, wait_s: float
) -> None:
    limits = limiter(new_backend)
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": reset,
    }
    limits.learn("d", headers, rpm=None, tpm=None, now=0.0, wall_now=0.0)
    decision = limits.acquire("d", rpm=None, tpm=None, tokens=0, now=0.0)
    assert decision.wait_s == about(wait_s)


def test_anthropic_exhausted_tokens_wait_for_the_reset_time(
    new_backend: Callable[[], StateBackend],
) -> None:
    limits = limiter(new_backend)
    headers = dict(ANTHROPIC_RECORDED)
    headers["anthropic-ratelimit-tokens-remaining"] = "0"
    headers["anthropic-ratelimit-tokens-reset"] = "2025-08-21T12:42:00Z"  # 60 s from now
    limits.learn("d", headers, rpm=None, tpm=None, now=5.0, wall_now=ANTHROPIC_AT)
    decision = limits.acquire("d", rpm=None, tpm=None, tokens=1600, now=5.0)
    assert (decision.limited_by, decision.wait_s) == ("tpm", about(1.0))


def test_headers_without_limits_change_nothing(new_backend: Callable[[], StateBackend]) -> None:
    limits = limiter(new_backend)
    learned = limits.learn(
        "d", {"content-type": "application/json"}, rpm=None, tpm=None, now=0.0, wall_now=0.0
    )
    assert learned.requests is None
    assert learned.tokens is None
    assert limits.acquire("d", rpm=None, tpm=None, tokens=10**9, now=0.0).granted


# --------------------------------------------------------------------------- tokenizers

MESSAGES = [
    {"role": "system", "content": "Tu es un assistant qui répond en français et en japonais."},
    {
        "role": "user",
        "content": "नमस्ते, आप कैसे हैं? 今日はいい天気ですね。Peux-tu résumer ce texte, s'il te plaît ?",
    },
]
MAX_TOKENS = 20


def test_a_tpm_limit_holds_for_two_models_with_different_tokenizers(
    new_backend: Callable[[], StateBackend],
) -> None:
    """gpt-4o (o200k_base) and gpt-4 (cl100k_base) share the traffic of one route, each behind
    its own tpm. Counted with its own tokenizer, each deployment's grants stay within its limit
    — and the counts differ, so counting gpt-4's traffic with gpt-4o's tokenizer would let it
    overrun."""
    tpm = 2000
    cost = {
        deployment: count_chat_tokens(MESSAGES, encoding=get_encoding(name)).tokens + MAX_TOKENS
        for deployment, name in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base"))
    }
    assert cost["gpt-4"] > cost["gpt-4o"] * 1.2
    limits = limiter(new_backend)
    used = dict.fromkeys(cost, 0)
    grants = dict.fromkeys(cost, 0)
    now = 0.0
    for turn in range(4000):
        deployment = ("gpt-4o", "gpt-4")[turn % 2]
        if limits.acquire(deployment, rpm=None, tpm=tpm, tokens=cost[deployment], now=now).granted:
            used[deployment] += cost[deployment]
            grants[deployment] += 1
        now += 0.05  # 200 s in all
        for tokens in used.values():
            assert tokens <= tpm + tpm * now / 60  # a minute's burst plus the rate
    # Fewer gpt-4 calls fit in the same tpm: its tokenizer needs more tokens per call.
    assert grants["gpt-4"] < grants["gpt-4o"]
    assert grants["gpt-4"] * cost["gpt-4"] > tpm * 3  # and the limit was used, not idle


def test_a_shared_tpm_counts_each_model_with_its_own_tokenizer(
    new_backend: Callable[[], StateBackend],
) -> None:
    """Both deployments behind one vendor quota (one key): the quota holds in vendor tokens."""
    tpm = 3000
    cost = [
        count_chat_tokens(MESSAGES, encoding=get_encoding(name)).tokens + MAX_TOKENS
        for name in ("o200k_base", "cl100k_base")
    ]
    limits = limiter(new_backend)
    used, now = 0, 0.0
    for turn in range(3000):
        tokens = cost[turn % 2]
        if limits.acquire("org-quota", rpm=None, tpm=tpm, tokens=tokens, now=now).granted:
            used += tokens
        now += 0.02
        assert used <= tpm + tpm * now / 60


# --------------------------------------------------------------------------- state machine

RPM, TPM = 30, 1000


class LimiterMachine(RuleBasedStateMachine):
    """Whatever the order of acquires, corrections and waits, grants stay within a token
    bucket's bound, and a refused caller that waits ``wait_s`` is then served."""

    grants = Bundle("grants")

    def __init__(self, backend: StateBackend | None = None) -> None:
        super().__init__()
        self.limits = RateLimiter(backend or MemoryBackend())
        self.now = 0.0
        self.requests = 0
        # Tokens granted less those returned by corrections. An excess taken by a correction
        # is not in it: it is the caller's underestimate, spent already, and only delays
        # later grants (tested apart).
        self.tokens = 0

    @rule(seconds=st.floats(0, 30))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(target=grants, tokens=st.integers(0, TPM + 50))
    def acquire(self, tokens: int) -> object:
        decision = self.limits.acquire("d", rpm=RPM, tpm=TPM, tokens=tokens, now=self.now)
        if decision.granted:
            self.requests += 1
            self.tokens += tokens
            return tokens
        if tokens > TPM:
            assert decision.wait_s == math.inf
            return multiple()
        assert 0 < decision.wait_s < math.inf
        # Waiting exactly as told is enough (nothing else happens meanwhile).
        self.now += decision.wait_s
        again = self.limits.acquire("d", rpm=RPM, tpm=TPM, tokens=tokens, now=self.now)
        assert again.granted, (decision, again)
        self.requests += 1
        self.tokens += tokens
        return tokens

    @rule(reserved=consumes(grants), actual=st.integers(0, 1500))
    def correct(self, reserved: int, actual: int) -> None:
        self.limits.correct(
            "d", tpm=TPM, reserved_tokens=reserved, actual_tokens=actual, now=self.now
        )
        self.tokens -= max(0, reserved - actual)

    @invariant()
    def within_the_bucket_bound(self) -> None:
        assert self.requests <= RPM + RPM * self.now / 60 + 1e-6
        assert self.tokens <= TPM + TPM * self.now / 60 + 1e-6


def test_the_limiter_keeps_the_bucket_bound(new_backend: Callable[[], StateBackend]) -> None:
    """Run on each backend."""
    run_state_machine_as_test(
        lambda: LimiterMachine(new_backend()),
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None),
    )


# --------------------------------------------------------------------------- threads


def run_threads(count: int, work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]


def test_threads_never_get_more_than_the_buckets_hold(
    new_backend: Callable[[], StateBackend],
) -> None:
    limits = limiter(new_backend)
    granted: list[int] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        tokens = 10 + index % 50
        for _ in range(20):
            if limits.acquire("d", rpm=300, tpm=5000, tokens=tokens, now=0.0).granted:
                with lock:
                    granted.append(tokens)

    run_threads(64, work)
    assert len(granted) <= 300
    assert sum(granted) <= 5000
    # And nothing was lost: what is left in each bucket is what was not granted. (How much is
    # left depends on the scheduler: a request refused for tokens hands its request slot back,
    # and a thread that tried to take that slot in between was refused meanwhile.)
    requests_left = limits._take("d", "requests", 0, 300, 0.0).apply(limits._backend).remaining
    tokens_left = limits._take("d", "tokens", 0, 5000, 0.0).apply(limits._backend).remaining
    assert (requests_left, tokens_left) == (300 - len(granted), 5000 - sum(granted))
    assert sum(granted) > 5000 / 2  # and most of it was handed out


def test_threads_on_a_moving_clock_stay_within_the_rate(
    new_backend: Callable[[], StateBackend],
) -> None:
    """Each thread reads a shared virtual clock that the threads themselves advance, then
    acquires: calls reach the backend with ``now`` out of order, as with a real clock read
    before the call. Switching threads every microsecond makes that happen constantly (it once
    let the memory backend refill the same interval twice and over-grant thousands of tokens)."""
    limits = limiter(new_backend)
    clock_lock = threading.Lock()
    clock = [0.0]
    granted = [0]

    def work(index: int) -> None:
        for _ in range(150):
            with clock_lock:
                clock[0] += 0.01
                now = clock[0]
            if limits.acquire("d", rpm=None, tpm=600, tokens=1, now=now).granted:
                with clock_lock:
                    granted[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        run_threads(16, work)
    finally:
        sys.setswitchinterval(interval)
    assert granted[0] <= 600 + 10 * clock[0] + 1e-6


def wait(seconds: float, *, cap_s: float = 60.0) -> RetryAfter:
    honoured = RetryAfter.honour(seconds, cap_s=cap_s)
    assert honoured is not None
    return honoured


def test_a_retry_after_pause_holds_every_caller_back_until_it_ends(
    new_backend: Callable[[], StateBackend],
) -> None:
    limiter = RateLimiter(new_backend())
    assert limiter.acquire("gpt", rpm=None, tpm=None, tokens=10, now=0.0).granted
    limiter.pause("gpt", wait(2.0), now=0.0)
    held = limiter.acquire("gpt", rpm=None, tpm=None, tokens=10, now=0.5)
    assert not held.granted
    assert held.limited_by == "retry-after"
    assert held.wait_s == pytest.approx(1.5, abs=1e-3)
    assert "Retry-After" in str(held.error(deployment="gpt", deadline_left_s=1.0))
    limiter.pause("gpt", wait(0.4), now=0.6)  # a shorter pause never cuts a longer one short
    assert not limiter.acquire("gpt", rpm=None, tpm=None, tokens=10, now=1.5).granted
    assert limiter.acquire("gpt", rpm=None, tpm=None, tokens=10, now=2.0).granted
    assert limiter.acquire("other", rpm=None, tpm=None, tokens=10, now=0.5).granted


@pytest.mark.parametrize(
    ("asked", "kept"),
    [(0.0, 0.0), (2.5, 2.5), (60.0, 60.0), (60.5, 60.0), (999_999.0, 60.0), (math.inf, 60.0)],
)
def test_a_retry_after_is_honoured_up_to_the_cap(asked: float, kept: float) -> None:
    honoured = RetryAfter.honour(asked, cap_s=60.0)
    assert honoured == RetryAfter(asked_s=asked, wait_s=kept)
    assert honoured.capped is (asked > 60.0)


@pytest.mark.parametrize("asked", [None, -1.0, math.nan])
def test_a_wait_that_is_no_number_of_seconds_is_no_wait(asked: float | None) -> None:
    assert RetryAfter.honour(asked, cap_s=60.0) is None


def test_the_pause_of_a_capped_retry_after_ends_at_the_cap_and_says_so(
    new_backend: Callable[[], StateBackend],
) -> None:
    limiter = RateLimiter(new_backend())
    pause = limiter.pause("gpt", wait(999_999.0), now=10.0)
    assert pause == VendorPause(until=70.0, retry_after=RetryAfter(asked_s=999_999.0, wait_s=60.0))
    assert limiter.paused("gpt", now=69.0) == pause
    held = limiter.acquire("gpt", rpm=None, tpm=None, tokens=10, now=10.0)
    assert (held.limited_by, held.wait_s) == ("retry-after", about(60.0))
    assert limiter.paused("gpt", now=70.0) is None
    assert limiter.acquire("gpt", rpm=None, tpm=None, tokens=10, now=70.0).granted
    assert limiter.paused("other", now=10.0) is None
