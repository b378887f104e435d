"""What every ``StateBackend`` does, checked on each of them (``backend``: memory and Redis):
token buckets, counters over windows and values with compare-and-set, on virtual time.
(Sliding windows: test_windows.py.)"""

from __future__ import annotations

import math

import pytest

from guardedllm.state import BucketTake, StateBackend

# ---------------------------------------------------------------- token buckets

BUCKET = {"capacity": 10.0, "refill_per_s": 2.0}


def test_a_new_bucket_starts_full_and_refills_at_its_rate(backend: StateBackend) -> None:
    assert backend.bucket_take("b", 10, **BUCKET, now=100.0) == BucketTake(
        granted=True, remaining=0.0, wait_s=0.0
    )
    assert backend.bucket_take("b", 3, **BUCKET, now=101.0) == BucketTake(
        granted=False, remaining=2.0, wait_s=0.5
    )
    assert backend.bucket_take("b", 3, **BUCKET, now=101.5).granted


def test_a_refill_stops_at_capacity(backend: StateBackend) -> None:
    backend.bucket_take("b", 4, **BUCKET, now=0.0)
    assert backend.bucket_put("b", 0.0, **BUCKET, now=1000.0) == 10.0
    assert not backend.bucket_take("b", 10.5, **BUCKET, now=1000.0).granted


def test_a_refused_take_takes_nothing(backend: StateBackend) -> None:
    backend.bucket_take("b", 9, **BUCKET, now=0.0)
    refused = backend.bucket_take("b", 5, **BUCKET, now=0.0)
    assert refused == BucketTake(granted=False, remaining=1.0, wait_s=2.0)
    assert backend.bucket_take("b", 1, **BUCKET, now=0.0) == BucketTake(
        granted=True, remaining=0.0, wait_s=0.0
    )


def test_a_bucket_that_never_refills_waits_forever(backend: StateBackend) -> None:
    backend.bucket_take("b", 10, capacity=10.0, refill_per_s=0.0, now=0.0)
    refused = backend.bucket_take("b", 1, capacity=10.0, refill_per_s=0.0, now=1e6)
    assert not refused.granted
    assert refused.wait_s == math.inf


def test_a_take_with_debt_always_succeeds_and_the_debt_is_refilled(backend: StateBackend) -> None:
    assert backend.bucket_take("b", 25, **BUCKET, now=0.0, allow_debt=True) == BucketTake(
        granted=True, remaining=-15.0, wait_s=0.0
    )
    assert backend.bucket_take("b", 1, **BUCKET, now=5.0) == BucketTake(
        granted=False, remaining=-5.0, wait_s=3.0
    )
    assert backend.bucket_take("b", 1, **BUCKET, now=8.0).granted


def test_a_put_is_capped_at_capacity(backend: StateBackend) -> None:
    backend.bucket_take("b", 6, **BUCKET, now=0.0)
    assert backend.bucket_put("b", 2.5, **BUCKET, now=0.0) == 6.5
    assert backend.bucket_put("b", 100, **BUCKET, now=0.0) == 10.0


def test_a_set_level_is_capped_and_refills_from_there(backend: StateBackend) -> None:
    backend.bucket_set("b", 1.0, **BUCKET, now=0.0)
    assert backend.bucket_put("b", 0.0, **BUCKET, now=1.0) == 3.0
    backend.bucket_set("b", 50.0, **BUCKET, now=1.0)
    assert backend.bucket_put("b", 0.0, **BUCKET, now=1.0) == 10.0


def test_a_lagging_caller_never_moves_the_refill_time_back(backend: StateBackend) -> None:
    backend.bucket_take("b", 10, **BUCKET, now=10.0)
    # A caller whose clock reads 5 s earlier refills nothing...
    assert backend.bucket_take("b", 1, **BUCKET, now=5.0) == BucketTake(
        granted=False, remaining=0.0, wait_s=0.5
    )
    # ...and does not make the next caller refill those 5 s again.
    assert backend.bucket_put("b", 0.0, **BUCKET, now=10.0) == 0.0
    assert backend.bucket_put("b", 0.0, **BUCKET, now=11.0) == 2.0


def test_buckets_keep_apart_by_key(backend: StateBackend) -> None:
    backend.bucket_take("a", 10, **BUCKET, now=0.0)
    assert backend.bucket_take("b", 10, **BUCKET, now=0.0).granted


def test_fractions_add_up_as_floats_do(backend: StateBackend) -> None:
    level = 10.0
    for step in range(1, 30):
        taken = backend.bucket_take("b", 0.1, **BUCKET, now=step * 0.01)
        level = min(10.0, level + 0.01 * 2.0) - 0.1
        assert taken.remaining == pytest.approx(level, abs=1e-12)


# ---------------------------------------------------------------- counters


def test_a_counter_adds_up_to_its_limit_and_refuses_past_it(backend: StateBackend) -> None:
    add = {"limit": 1.0, "expires_at": 100.0, "now": 0.0}
    assert backend.counter_add("c", 0.6, **add) == (True, 0.6)
    assert backend.counter_add("c", 0.6, **add) == (False, 0.6)
    assert backend.counter_add("c", 0.4, **add) == (True, 1.0)
    assert backend.counters_get(["c"], now=0.0) == {"c": 1.0}


def test_a_negative_amount_is_always_added(backend: StateBackend) -> None:
    backend.counter_add("c", 5.0, limit=None, expires_at=100.0, now=0.0)
    assert backend.counter_add("c", -2.0, limit=1.0, expires_at=100.0, now=0.0) == (True, 3.0)
    assert backend.counter_add("c", 1.0, limit=1.0, expires_at=100.0, now=0.0) == (False, 3.0)


def test_without_a_limit_every_amount_is_added(backend: StateBackend) -> None:
    for _ in range(3):
        backend.counter_add("c", 1e9, limit=None, expires_at=100.0, now=0.0)
    assert backend.counters_get(["c"], now=1.0) == {"c": 3e9}


def test_a_counter_reads_as_zero_once_it_expires(backend: StateBackend) -> None:
    backend.counter_add("c", 2.0, limit=None, expires_at=10.0, now=0.0)
    assert backend.counters_get(["c"], now=10.0) == {"c": 2.0}  # up to and including expiry
    assert backend.counters_get(["c"], now=10.5) == {"c": 0.0}
    # An expired counter starts again from zero, with the new expiry.
    assert backend.counter_add("c", 1.0, limit=1.5, expires_at=20.0, now=10.5) == (True, 1.0)
    assert backend.counters_get(["c"], now=19.0) == {"c": 1.0}


def test_each_add_sets_the_expiry(backend: StateBackend) -> None:
    backend.counter_add("c", 1.0, limit=None, expires_at=10.0, now=0.0)
    backend.counter_add("c", 1.0, limit=None, expires_at=50.0, now=5.0)
    assert backend.counters_get(["c"], now=40.0) == {"c": 2.0}


def test_counters_are_read_together_absent_ones_as_zero(backend: StateBackend) -> None:
    backend.counter_add("budget:d:1", 1.5, limit=None, expires_at=100.0, now=0.0)
    backend.counter_add("budget:d:2", 2.5, limit=None, expires_at=100.0, now=0.0)
    backend.counter_add("other", 4.0, limit=None, expires_at=100.0, now=0.0)
    keys = ["budget:d:1", "budget:d:2", "budget:d:3", "other", "budget:e:1"]
    assert backend.counters_get(keys, now=1.0) == {
        "budget:d:1": 1.5,
        "budget:d:2": 2.5,
        "budget:d:3": 0.0,
        "other": 4.0,
        "budget:e:1": 0.0,
    }
    assert backend.counters_get([], now=1.0) == {}


def test_whole_numbers_stay_exact_far_up(backend: StateBackend) -> None:
    # Spend budgets count nano-dollars: integers in floats, exact up to 2**53.
    big = float(2**52)
    backend.counter_add("c", big, limit=None, expires_at=100.0, now=0.0)
    assert backend.counter_add("c", 3.0, limit=big + 3.0, expires_at=100.0, now=0.0) == (
        True,
        big + 3.0,
    )
    assert backend.counter_add("c", 1.0, limit=big + 3.0, expires_at=100.0, now=0.0) == (
        False,
        big + 3.0,
    )


# ---------------------------------------------------------------- values


def test_a_value_is_set_only_over_what_was_expected(backend: StateBackend) -> None:
    assert backend.value_get("v", now=0.0) is None
    assert backend.value_cas("v", None, "one", now=0.0)
    assert not backend.value_cas("v", None, "two", now=0.0)
    assert not backend.value_cas("v", "zero", "two", now=0.0)
    assert backend.value_get("v", now=0.0) == "one"
    assert backend.value_cas("v", "one", "two", now=0.0)
    assert backend.value_get("v", now=0.0) == "two"


def test_a_value_set_to_none_is_deleted(backend: StateBackend) -> None:
    backend.value_cas("v", None, "one", now=0.0)
    assert not backend.value_cas("v", "other", None, now=0.0)
    assert backend.value_cas("v", "one", None, now=0.0)
    assert backend.value_get("v", now=0.0) is None
    assert backend.value_cas("v", None, "again", now=0.0)


def test_a_value_expires_and_then_matches_none(backend: StateBackend) -> None:
    backend.value_cas("v", None, "mark", expires_at=10.0, now=0.0)
    assert backend.value_get("v", now=10.0) == "mark"
    assert backend.value_get("v", now=10.5) is None
    assert not backend.value_cas("v", "mark", "late", now=10.5)
    assert backend.value_cas("v", None, "new", now=10.5)
    assert backend.value_get("v", now=1e9) == "new"  # no expiry of its own


def test_a_value_without_expiry_loses_an_earlier_one(backend: StateBackend) -> None:
    backend.value_cas("v", None, "short", expires_at=10.0, now=0.0)
    backend.value_cas("v", "short", "kept", now=1.0)
    assert backend.value_get("v", now=100.0) == "kept"


@pytest.mark.parametrize("text", ["", " ", "é ü ß", "🙂 emoji", "a\nb\x00c", "0" * 5000])
def test_values_round_trip_exactly(backend: StateBackend, text: str) -> None:
    assert backend.value_cas("v", None, text, now=0.0)
    assert backend.value_get("v", now=0.0) == text
    assert not backend.value_cas("v", None, "other", now=0.0)  # "" is a value, not None
    assert backend.value_cas("v", text, None, now=0.0)


def test_values_buckets_and_counters_of_one_name_keep_apart(backend: StateBackend) -> None:
    backend.value_cas("k", None, "value", now=0.0)
    backend.counter_add("k", 2.0, limit=None, expires_at=10.0, now=0.0)
    backend.bucket_take("k", 1.0, **BUCKET, now=0.0)
    backend.window_add("k", (1.0,), slice_index=0, slices=2, expires_at=10.0, now=0.0)
    assert backend.value_get("k", now=0.0) == "value"
    assert backend.counters_get(["k"], now=0.0) == {"k": 2.0}
    assert backend.bucket_put("k", 0.0, **BUCKET, now=0.0) == 9.0
