"""Spend budgets on virtual wall time: windows, scopes, reservations, settlement, concurrency."""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone

import attrs
import pytest
from hypothesis import given, settings
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

from guardedllm.errors import BudgetExceededError, ConfigError
from guardedllm.guards import Reservation, SpendBudget, SpendLedger, window_bounds
from guardedllm.guards.spend import MAX_BUDGET_USD, Window
from guardedllm.state import MemoryBackend, StateBackend

# 2024-05-15T10:20:30Z: mid-month, mid-day, mid-hour, mid-minute.
T0 = datetime(2024, 5, 15, 10, 20, 30, tzinfo=timezone.utc).timestamp()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp()


def ledger(new_backend: Callable[[], StateBackend], *budgets: SpendBudget) -> SpendLedger:
    return SpendLedger(new_backend(), budgets)


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("window", "start", "end"),
    [
        ("minute", utc(2024, 5, 15, 10, 20), utc(2024, 5, 15, 10, 21)),
        ("hour", utc(2024, 5, 15, 10), utc(2024, 5, 15, 11)),
        ("day", utc(2024, 5, 15), utc(2024, 5, 16)),
        ("month", utc(2024, 5, 1), utc(2024, 6, 1)),
    ],
)
def test_window_bounds(window: Window, start: float, end: float) -> None:
    assert window_bounds(window, T0) == (start, end)


def test_month_windows_follow_the_calendar() -> None:
    assert window_bounds("month", utc(2024, 2, 29, 23, 59, 59)) == (
        utc(2024, 2, 1),
        utc(2024, 3, 1),
    )
    assert window_bounds("month", utc(2023, 12, 31, 12)) == (utc(2023, 12, 1), utc(2024, 1, 1))
    assert window_bounds("month", utc(2024, 1, 1)) == (utc(2024, 1, 1), utc(2024, 2, 1))


@given(
    st.sampled_from(["minute", "hour", "day", "month"]),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_a_window_holds_its_moment_and_starts_on_a_boundary(window: Window, now: float) -> None:
    start, end = window_bounds(window, now)
    assert start <= now < end
    begins = datetime.fromtimestamp(start, tz=timezone.utc)
    assert begins.second == begins.microsecond == 0
    if window != "minute":
        assert begins.minute == 0
    if window in {"day", "month"}:
        assert begins.hour == 0
    if window == "month":
        assert begins.day == 1
        assert 28 * 86400 <= end - start <= 31 * 86400
    assert window_bounds(window, end)[0] == end  # the next window starts where this one ends


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scope": "tenant", "window": "day", "limit_usd": 1},
        {"scope": "global", "window": "week", "limit_usd": 1},
        {"scope": "global", "window": "day", "limit_usd": -1},
        {"scope": "global", "window": "day", "limit_usd": math.nan},
        {"scope": "global", "window": "day", "limit_usd": MAX_BUDGET_USD * 2},
        {"scope": "global", "window": "day", "limit_usd": 1, "match": "support"},
        {"scope": "route", "window": "day", "limit_usd": 1, "match": " "},
        {"scope": "route", "window": "day", "limit_usd": 1, "name": ""},
    ],
)
def test_invalid_budgets_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SpendBudget(**kwargs)  # type: ignore[arg-type]


def test_budget_names_are_unique(new_backend: Callable[[], StateBackend]) -> None:
    budget = SpendBudget(scope="global", window="day", limit_usd=1, name="daily")
    with pytest.raises(ConfigError, match=r"budgets\[1\]\.name"):
        ledger(new_backend, budget, attrs.evolve(budget, window="month"))


@pytest.mark.parametrize("amount", [-0.01, math.inf, math.nan])
def test_reserving_a_nonsense_amount_is_a_programming_error(
    new_backend: Callable[[], StateBackend], amount: float
) -> None:
    spend = ledger(new_backend, SpendBudget(scope="global", window="day", limit_usd=1))
    with pytest.raises(ValueError, match="amount_usd"):
        spend.reserve(route="chat", key=None, amount_usd=amount, wall_now=T0)


# --------------------------------------------------------------------------- reserve / settle


def test_reserve_settle_release_move_the_counter(new_backend: Callable[[], StateBackend]) -> None:
    spend = ledger(new_backend, SpendBudget(scope="global", window="day", limit_usd=1))
    first = spend.reserve(route="chat", key=None, amount_usd=0.25, wall_now=T0)
    second = spend.reserve(route="chat", key=None, amount_usd=0.25, wall_now=T0)
    status = spend.spent(scope="global", window="day", wall_now=T0)
    assert (status.spent_usd, status.reserved_usd, status.remaining_usd) == (0, 0.5, 0.5)

    spend.settle(first, 0.1, wall_now=T0 + 1)
    spend.release(second, wall_now=T0 + 2)
    status = spend.spent(scope="global", window="day", wall_now=T0 + 3)
    assert (status.spent_usd, status.reserved_usd, status.remaining_usd) == (0.1, 0, 0.9)
    assert status.limit_usd == 1
    assert (status.window_start, status.resets_at) == window_bounds("day", T0)


def test_a_reservation_that_would_overspend_is_refused_with_a_useful_message(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(
        new_backend, SpendBudget(scope="global", window="day", limit_usd=1, name="daily")
    )
    spend.settle(spend.reserve(route="c", key=None, amount_usd=0.6, wall_now=T0), 0.6, wall_now=T0)
    spend.reserve(route="c", key=None, amount_usd=0.3, wall_now=T0)
    with pytest.raises(BudgetExceededError) as caught:
        spend.reserve(route="c", key=None, amount_usd=0.2, wall_now=T0)
    error = caught.value
    assert (error.cost_usd, error.limit_usd) == (0.2, 1.0)
    message = str(error)
    for part in (
        "'daily'",
        "$0.2",
        "$0.6 spent",
        "$0.3 reserved",
        "$1 limit",
        "day from 2024-05-15T00:00:00Z",
        "reset at 2024-05-16T00:00:00Z",
        "Nothing was sent",
        "raise limit_usd",
    ):
        assert part in message
    # Exactly filling the budget is allowed.
    spend.reserve(route="c", key=None, amount_usd=0.1, wall_now=T0)


def test_a_refusal_anywhere_holds_nothing_anywhere(new_backend: Callable[[], StateBackend]) -> None:
    spend = ledger(
        new_backend,
        SpendBudget(scope="global", window="month", limit_usd=10),
        SpendBudget(scope="route", window="day", limit_usd=5),
        SpendBudget(scope="key", window="hour", limit_usd=1),
    )
    spend.reserve(route="chat", key="acme", amount_usd=0.9, wall_now=T0)
    with pytest.raises(BudgetExceededError, match=r"each key per hour \(key 'acme'\)"):
        spend.reserve(route="chat", key="acme", amount_usd=0.2, wall_now=T0)
    for scope, window, subject in (("global", "month", {}), ("route", "day", {"route": "chat"})):
        status = spend.spent(scope=scope, window=window, wall_now=T0, **subject)  # type: ignore[arg-type]
        assert status.reserved_usd == 0.9


def test_actual_cost_above_the_reservation_is_recorded_and_refuses_what_follows(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(new_backend, SpendBudget(scope="global", window="day", limit_usd=1))
    reservation = spend.reserve(route="c", key=None, amount_usd=0.9, wall_now=T0)
    spend.settle(reservation, 1.5, wall_now=T0)  # real spend is never dropped
    status = spend.spent(scope="global", window="day", wall_now=T0)
    assert (status.spent_usd, status.reserved_usd, status.remaining_usd) == (1.5, 0, 0)
    with pytest.raises(BudgetExceededError):
        spend.reserve(route="c", key=None, amount_usd=0.0001, wall_now=T0)
    spend.reserve(route="c", key=None, amount_usd=0, wall_now=T0)  # a free call still goes


def test_a_new_window_starts_from_zero(new_backend: Callable[[], StateBackend]) -> None:
    spend = ledger(new_backend, SpendBudget(scope="global", window="minute", limit_usd=1))
    spend.settle(spend.reserve(route="c", key=None, amount_usd=1, wall_now=T0), 1, wall_now=T0)
    with pytest.raises(BudgetExceededError):
        spend.reserve(route="c", key=None, amount_usd=0.5, wall_now=T0 + 29)
    spend.reserve(route="c", key=None, amount_usd=1, wall_now=T0 + 30)  # 10:21:00


def test_settling_after_the_window_ended_counts_the_cost_in_the_new_window(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(new_backend, SpendBudget(scope="global", window="minute", limit_usd=1))
    late = spend.reserve(route="c", key=None, amount_usd=0.8, wall_now=T0 + 29)
    spend.settle(late, 0.5, wall_now=T0 + 31)
    now = spend.spent(scope="global", window="minute", wall_now=T0 + 31)
    assert (now.spent_usd, now.reserved_usd) == (0.5, 0)
    before = spend.spent(scope="global", window="minute", wall_now=T0 + 29)
    assert (before.spent_usd, before.reserved_usd) == (0, 0)  # the hold went back


def test_releasing_after_the_window_ended_touches_only_the_old_window(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(new_backend, SpendBudget(scope="global", window="minute", limit_usd=1))
    late = spend.reserve(route="c", key=None, amount_usd=0.8, wall_now=T0 + 29)
    fresh = spend.reserve(route="c", key=None, amount_usd=0.7, wall_now=T0 + 31)
    spend.release(late, wall_now=T0 + 32)
    assert spend.spent(scope="global", window="minute", wall_now=T0 + 32).reserved_usd == 0.7
    spend.release(fresh, wall_now=T0 + 32)


# --------------------------------------------------------------------------- scopes


def test_each_route_and_each_key_has_its_own_counter(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(
        new_backend,
        SpendBudget(scope="route", window="day", limit_usd=1),
        SpendBudget(scope="key", window="day", limit_usd=0.5),
    )
    spend.reserve(route="support", key="acme", amount_usd=0.5, wall_now=T0)
    spend.reserve(route="support", key="zed", amount_usd=0.5, wall_now=T0)
    spend.reserve(route="search", key="acme2", amount_usd=0.5, wall_now=T0)
    with pytest.raises(BudgetExceededError, match=r"route 'support'"):
        spend.reserve(route="support", key="new", amount_usd=0.5, wall_now=T0)
    with pytest.raises(BudgetExceededError, match=r"key 'acme'"):
        spend.reserve(route="search", key="acme", amount_usd=0.1, wall_now=T0)
    # Key budgets do not apply to calls without a key.
    spend.reserve(route="search", key=None, amount_usd=0.5, wall_now=T0)


def test_match_narrows_a_budget_to_one_route_or_key(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(
        new_backend,
        SpendBudget(scope="route", window="day", limit_usd=0.1, match="support"),
        SpendBudget(scope="key", window="day", limit_usd=0.1, match="trial", name="trial"),
    )
    spend.reserve(route="search", key="paid", amount_usd=5, wall_now=T0)
    with pytest.raises(BudgetExceededError, match=r"route 'support' per day would"):
        spend.reserve(route="support", key="paid", amount_usd=0.2, wall_now=T0)
    with pytest.raises(BudgetExceededError, match=r"'trial' would"):
        spend.reserve(route="search", key="trial", amount_usd=0.2, wall_now=T0)


def test_budgets_on_the_same_counter_share_it_and_the_tightest_binds(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(
        new_backend,
        SpendBudget(scope="global", window="day", limit_usd=1, name="loose"),
        SpendBudget(scope="global", window="day", limit_usd=0.5, name="tight"),
    )
    reservation = spend.reserve(route="c", key=None, amount_usd=0.3, wall_now=T0)
    assert len(reservation.counters) == 1  # counted once, not once per budget
    with pytest.raises(BudgetExceededError, match="'tight'"):
        spend.reserve(route="c", key=None, amount_usd=0.3, wall_now=T0)
    assert spend.spent(scope="global", window="day", wall_now=T0).budget == "'tight'"
    loose, tight = spend.statuses(wall_now=T0)
    assert (loose.reserved_usd, loose.remaining_usd) == (0.3, 0.7)
    assert (tight.reserved_usd, tight.remaining_usd) == (0.3, 0.2)


def test_statuses_list_every_budget(new_backend: Callable[[], StateBackend]) -> None:
    spend = ledger(
        new_backend,
        SpendBudget(scope="global", window="month", limit_usd=100),
        SpendBudget(scope="route", window="day", limit_usd=10),
        SpendBudget(scope="key", window="day", limit_usd=1, match="acme"),
        SpendBudget(scope="key", window="hour", limit_usd=2),
    )
    spend.settle(spend.reserve(route="a", key="acme", amount_usd=1, wall_now=T0), 1, wall_now=T0)
    found = spend.statuses(wall_now=T0, routes=["a", "b"], keys=["acme", "zed"])
    assert [(s.budget, s.subject, s.spent_usd) for s in found] == [
        ("global per month", None, 1),
        ("each route per day", "a", 1),
        ("each route per day", "b", 0),
        ("key 'acme' per day", "acme", 1),
        ("each key per hour", "acme", 1),
        ("each key per hour", "zed", 0),
    ]
    assert len(spend.statuses(wall_now=T0)) == 2  # per-route and per-key need names to list


def test_spent_needs_a_budget_and_a_subject(new_backend: Callable[[], StateBackend]) -> None:
    spend = ledger(
        new_backend, SpendBudget(scope="route", window="day", limit_usd=1, match="support")
    )
    with pytest.raises(ValueError, match="add one"):
        spend.spent(scope="route", window="day", route="search", wall_now=T0)
    with pytest.raises(ValueError, match="route="):
        spend.spent(scope="route", window="day", wall_now=T0)
    with pytest.raises(ValueError, match="add one"):
        spend.spent(scope="global", window="day", wall_now=T0)


def test_no_budget_means_an_empty_reservation(new_backend: Callable[[], StateBackend]) -> None:
    spend = ledger(new_backend)
    reservation = spend.reserve(route="c", key="k", amount_usd=100, wall_now=T0)
    assert reservation.counters == ()
    spend.settle(reservation, 200, wall_now=T0)


def test_cents_add_up_exactly(new_backend: Callable[[], StateBackend]) -> None:
    """Ten reservations of $0.1 fill a $1 budget exactly (floats alone would drift)."""
    spend = ledger(new_backend, SpendBudget(scope="global", window="day", limit_usd=1))
    for _ in range(10):
        spend.settle(
            spend.reserve(route="c", key=None, amount_usd=0.1, wall_now=T0), 0.1, wall_now=T0
        )
    status = spend.spent(scope="global", window="day", wall_now=T0)
    assert (status.spent_usd, status.remaining_usd) == (1, 0)


# --------------------------------------------------------------------------- state machine

_NANO = 1_000_000_000
BUDGETS = (
    SpendBudget(scope="global", window="hour", limit_usd=1.0),
    SpendBudget(scope="route", window="day", limit_usd=0.6),
    SpendBudget(scope="key", window="minute", limit_usd=0.3, match="acme"),
    SpendBudget(scope="key", window="day", limit_usd=0.5),
)


@attrs.frozen
class _Held:
    reservation: Reservation
    route: str
    key: str | None
    wall: float


class SpendMachine(RuleBasedStateMachine):
    """The ledger against a model of integer nano-dollar counters, one reservation at a time."""

    held = Bundle("held")

    def __init__(self, backend: StateBackend | None = None) -> None:
        super().__init__()
        self.spend = SpendLedger(backend or MemoryBackend(), BUDGETS)
        self.wall = T0
        # (scope, subject, window, window start) -> [total, settled] in nano-dollars
        self.model: dict[tuple[str, str, str, float], list[int]] = defaultdict(lambda: [0, 0])
        # Counters that took a settlement without a limit check: an actual cost above its
        # reservation, or one carried into a window that began after the reservation.
        self.unchecked: set[tuple[str, str, str, float]] = set()

    def counters(
        self, route: str, key: str | None, wall: float
    ) -> dict[tuple[str, str, str, float], int]:
        found: dict[tuple[str, str, str, float], int] = {}
        for budget in BUDGETS:
            subject = budget.subject_for(route=route, key=key)
            if subject is None:
                continue
            counter = (budget.scope, subject, budget.window, window_bounds(budget.window, wall)[0])
            limit = round(budget.limit_usd * _NANO)
            found[counter] = min(limit, found.get(counter, limit))
        return found

    @rule(seconds=st.sampled_from([0.0, 1.0, 29.5, 61.0, 3600.0, 86400.0]))
    def advance(self, seconds: float) -> None:
        self.wall += seconds

    @rule(
        target=held,
        route=st.sampled_from(["a", "b"]),
        key=st.sampled_from([None, "acme", "zed"]),
        units=st.integers(0, 400_000_000),
    )
    def reserve(self, route: str, key: str | None, units: int) -> _Held | object:
        counters = self.counters(route, key, self.wall)
        fits = all(self.model[c][0] + units <= limit for c, limit in counters.items())
        try:
            reservation = self.spend.reserve(
                route=route, key=key, amount_usd=units / _NANO, wall_now=self.wall
            )
        except BudgetExceededError:
            assert not fits
            return multiple()  # nothing to hand on
        assert fits
        for counter in counters:
            self.model[counter][0] += units
        return _Held(reservation, route, key, self.wall)

    @rule(held=consumes(held), fraction=st.floats(0, 1), over=st.booleans())
    def settle(self, held: _Held, fraction: float, over: bool) -> None:
        units = held.reservation.units
        actual = units + 1_000_000 if over else math.floor(units * fraction)
        self.spend.settle(held.reservation, actual / _NANO, wall_now=self.wall)
        for then in self.counters(held.route, held.key, held.wall):
            now = (*then[:3], window_bounds(then[2], self.wall)[0])  # type: ignore[arg-type]
            self.model[then][0] -= units
            self.model[now][0] += actual
            self.model[now][1] += actual
            if over or now != then:
                self.unchecked.add(now)

    @rule(held=consumes(held))
    def release(self, held: _Held) -> None:
        self.spend.release(held.reservation, wall_now=self.wall)
        for counter in self.counters(held.route, held.key, held.wall):
            self.model[counter][0] -= held.reservation.units

    @invariant()
    def counters_match_the_model(self) -> None:
        for route in ("a", "b"):
            for key in (None, "acme", "zed"):
                for counter, limit in self.counters(route, key, self.wall).items():
                    scope, subject, window, _ = counter
                    status = self.spend.spent(
                        scope=scope,  # type: ignore[arg-type]
                        window=window,  # type: ignore[arg-type]
                        route=subject,
                        key=subject,
                        wall_now=self.wall,
                    )
                    total, settled = self.model[counter]
                    assert round(status.spent_usd * _NANO) == settled
                    assert round(status.reserved_usd * _NANO) == max(0, total - settled)
                    assert round(status.remaining_usd * _NANO) == max(0, limit - total)
                    if counter not in self.unchecked:
                        assert settled <= total <= limit


def test_the_ledger_keeps_to_the_model(new_backend: Callable[[], StateBackend]) -> None:
    """Run on each backend; fewer examples on Redis, where each step costs round trips (15
    take about 2 s there)."""
    examples = 40 if new_backend is MemoryBackend else 15
    run_state_machine_as_test(
        lambda: SpendMachine(new_backend()),
        settings=settings(max_examples=examples, stateful_step_count=40, deadline=None),
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


def test_500_concurrent_reservations_never_overspend(
    new_backend: Callable[[], StateBackend],
) -> None:
    spend = ledger(new_backend, SpendBudget(scope="global", window="day", limit_usd=1))
    settled: list[int] = []
    refused: list[int] = []
    rng = random.Random(7)
    plans = [(rng.randint(1, 10_000_000), rng.random()) for _ in range(500)]  # up to $0.01

    def work(index: int) -> None:
        units, fraction = plans[index]
        try:
            reservation = spend.reserve(route="c", key=None, amount_usd=units / _NANO, wall_now=T0)
        except BudgetExceededError:
            refused.append(index)
            return
        actual = math.floor(units * fraction)
        spend.settle(reservation, actual / _NANO, wall_now=T0)
        settled.append(actual)

    run_threads(500, work)
    status = spend.spent(scope="global", window="day", wall_now=T0)
    assert sum(settled) <= _NANO
    assert round(status.spent_usd * _NANO) == sum(settled)
    assert status.reserved_usd == 0
    assert len(settled) + len(refused) == 500


def test_500_concurrent_reservations_on_two_budgets_roll_back_cleanly(
    new_backend: Callable[[], StateBackend],
) -> None:
    """Tenants' small budgets refuse many calls after the global one was taken; every refusal
    gives the global hold back, so the global counter is exactly the tenants' sum."""
    spend = ledger(
        new_backend,
        SpendBudget(scope="global", window="day", limit_usd=2),
        SpendBudget(scope="key", window="day", limit_usd=0.2),
    )
    tenants = [f"tenant-{i}" for i in range(10)]
    settled: dict[str, list[int]] = {tenant: [] for tenant in tenants}
    lock = threading.Lock()

    def work(index: int) -> None:
        tenant = tenants[index % len(tenants)]
        units = 5_000_000 + index * 10_000  # $0.005 .. $0.01
        try:
            reservation = spend.reserve(
                route="c", key=tenant, amount_usd=units / _NANO, wall_now=T0
            )
        except BudgetExceededError:
            return
        if index % 3 == 0:
            spend.release(reservation, wall_now=T0)
            return
        spend.settle(reservation, units / _NANO, wall_now=T0)
        with lock:
            settled[tenant].append(units)

    run_threads(500, work)
    total = 0
    for tenant in tenants:
        status = spend.spent(scope="key", window="day", key=tenant, wall_now=T0)
        assert round(status.spent_usd * _NANO) == sum(settled[tenant]) <= 0.2 * _NANO
        assert status.reserved_usd == 0
        total += sum(settled[tenant])
    overall = spend.spent(scope="global", window="day", wall_now=T0)
    assert round(overall.spent_usd * _NANO) == total
    assert overall.reserved_usd == 0
    assert overall.remaining_usd == pytest.approx(2 - total / _NANO)
