"""Rule matching and ordering, directly on the RuleBook."""

from __future__ import annotations

import threading

import pytest

from guardedllm.testing import Behaviour
from guardedllm.testing._script import DEFAULT_BEHAVIOUR, RuleBook

A = Behaviour(status=500)
B = Behaviour(status=429)
C = Behaviour(latency=0.1)


def test_rules_play_fifo_and_run_out() -> None:
    book = RuleBook()
    first = book.add(A, times=1)
    second = book.add(B, times=2)
    taken = [book.take("openai", "m", "chat") for _ in range(4)]
    assert taken == [A, B, B, DEFAULT_BEHAVIOUR]
    assert (first.hits, second.hits) == (1, 2)
    assert first.remaining == 0
    assert not second.active
    assert len(book) == 0


def test_a_forever_rule_shadows_later_ones_until_cancelled() -> None:
    book = RuleBook()
    forever = book.add(A)
    later = book.add(B, times=1)
    assert [book.take("openai", "m", "chat") for _ in range(3)] == [A, A, A]
    assert forever.remaining is None
    forever.cancel()
    forever.cancel()  # idempotent
    assert book.take("openai", "m", "chat") == B
    assert (forever.hits, later.hits) == (3, 1)
    assert not forever.active


def test_matchers_filter_by_model_vendor_and_endpoint() -> None:
    book = RuleBook()
    book.add(A, model="m1")
    book.add(B, vendor="anthropic")
    book.add(C, endpoint="count_tokens")
    assert book.take("openai", "m1", "chat") == A
    assert book.take("anthropic", "m2", "chat") == B
    assert book.take("gemini", "m2", "count_tokens") == C
    assert book.take("gemini", "m2", "chat") == DEFAULT_BEHAVIOUR


def test_clear_cancels_every_rule() -> None:
    book = RuleBook()
    rule = book.add(A)
    book.clear()
    assert not rule.active
    assert book.take("openai", "m", "chat") == DEFAULT_BEHAVIOUR


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"vendor": "bedrock"}, "vendor"), ({"endpoint": "x"}, "endpoint"), ({"times": 0}, "times")],
)
def test_bad_matchers_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RuleBook().add(A, **kwargs)  # type: ignore[arg-type]


def test_uses_are_counted_exactly_under_concurrent_takers() -> None:
    book = RuleBook()
    rule = book.add(A, times=500)
    results: list[Behaviour] = []
    lock = threading.Lock()

    def take_many() -> None:
        mine = [book.take("openai", "m", "chat") for _ in range(100)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=take_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results.count(A) == 500
    assert rule.hits == 500
    assert "hits=500" in repr(rule)
