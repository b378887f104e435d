"""Spend budgets: a worst-case cost reserved before a call is sent, settled to the actual cost.

A ``SpendBudget`` caps what calls may cost in one time window, for one scope: every call
(``global``), each route or alias name (``route``), or each caller-supplied key such as a tenant
id (``key``). Budgets that count the same thing — same scope, same route or key, same window —
share one counter and the smallest limit binds.

Rules, which the tests check under hypothesis and real threads:

- A reservation is one ``counter_add`` with a limit per counter: atomic in the backend, so many
  threads, tasks or processes reserving at once never take a counter over its limit.
- A reservation takes every applicable counter or none: when one refuses, the ones already taken
  are given back before ``BudgetExceededError`` is raised. While that happens another caller may
  see the brief hold and be refused too; a refusal can be spurious under contention, an
  overspend never is.
- Real spend is never lost: ``settle`` records the actual cost even when it is above the
  reservation and takes the counter over its limit (the limit then refuses the next calls).
  So when every actual cost is at most its reservation, settled spend stays within the limit —
  in each window: a cost settled after its reservation's window ended is counted, in full, in
  the window where it settles, which it may take over its limit.
- Amounts are counted in whole nano-dollars (integers held in floats, exact up to 2**53, about
  $9 million per window), so reservations and releases cancel exactly and a long-lived counter
  never drifts past its limit by rounding.

Windows are wall-clock, unlike the guards' monotonic ``now``: ``wall_now`` is Unix time
(``time.time()``, injectable as the engine's ``wall_clock``). Minutes and hours are fixed
buckets of Unix time; days and months are calendar days and months in UTC. A counter expires
when its window ends, so a new window starts from zero.

Counter keys: ``spend:<scope>:<route or key, quoted>:<window>:<window start>:total`` holds spent
plus reserved (the number the limit applies to) and ``...:settled`` the spent part only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Literal
from urllib.parse import quote

import attrs

from guardedllm._checks import require_number, require_text
from guardedllm.errors import ArgumentError, BudgetExceededError, ConfigError, ConfigProblem
from guardedllm.state import flow as ops
from guardedllm.state.base import StateBackend
from guardedllm.state.flow import Flow, Op, run

__all__ = [
    "MAX_BUDGET_USD",
    "Reservation",
    "Scope",
    "SpendBudget",
    "SpendLedger",
    "SpendStatus",
    "Window",
    "window_bounds",
]

Scope = Literal["global", "route", "key"]
Window = Literal["minute", "hour", "day", "month"]

_SCOPES: tuple[Scope, ...] = ("global", "route", "key")
_WINDOWS: tuple[Window, ...] = ("minute", "hour", "day", "month")
_FIXED_WINDOW_S = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}  # Unix days are 86400 s

_NANO = 1_000_000_000  # counters hold nano-dollars
# The largest limit whose nano-dollar count is still an exact integer in a float (2**53).
MAX_BUDGET_USD = 9_000_000.0
# A product like 0.3 * 1e9 can land a hair above its integer; closer than this is that integer.
_ROUNDING_SLACK = 1e-3


def window_bounds(window: Window, wall_now: float) -> tuple[float, float]:
    """The ``[start, end)`` of the ``window`` that holds Unix time ``wall_now``."""
    length = _FIXED_WINDOW_S.get(window)
    if length is not None:
        start = math.floor(wall_now / length) * length
        return start, start + length
    moment = datetime.fromtimestamp(wall_now, tz=timezone.utc)
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
    return first.timestamp(), first.replace(year=year, month=month).timestamp()


def _to_units(usd: float) -> int:
    """An amount in nano-dollars, rounded up: a reservation never covers less than asked."""
    return math.ceil(usd * _NANO - _ROUNDING_SLACK)


def _limit_units(usd: float) -> int:
    """A limit in nano-dollars, rounded down: a budget never allows more than configured."""
    return math.floor(usd * _NANO + _ROUNDING_SLACK)


def _usd(units: float) -> float:
    return units / _NANO


def _money(usd: float) -> str:
    return "$" + f"{usd:,.6f}".rstrip("0").rstrip(".")


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_amount(what: str, usd: float) -> None:
    if not (math.isfinite(usd) and 0 <= usd <= MAX_BUDGET_USD):
        raise ArgumentError(
            f"{what} must be a finite number of USD in [0, {MAX_BUDGET_USD:g}]; got {usd!r}"
        )


# --------------------------------------------------------------------------- configuration


def _limit_validator(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= MAX_BUDGET_USD):
        raise ArgumentError(
            f"SpendBudget.limit_usd must be between 0 and {MAX_BUDGET_USD:g} USD per window; "
            f"got {value!r}"
        )


def _limit(value: object) -> float:
    require_number("SpendBudget", "limit_usd", value)
    return float(value)  # type: ignore[arg-type]  # a number, checked above


def _one_of(
    choices: tuple[str, ...],
) -> Callable[[object, attrs.Attribute[str], object], None]:
    def check(_: object, attribute: attrs.Attribute[str], value: object) -> None:
        if value not in choices:
            raise ArgumentError(
                f"SpendBudget.{attribute.name} must be one of {', '.join(map(repr, choices))}; "
                f"got {value!r}"
            )

    return check


def _optional_text(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    require_text("SpendBudget", attribute.name, value)
    if value is not None and not value.strip():
        raise ArgumentError(f"SpendBudget.{attribute.name} must be non-empty text when given")


@attrs.frozen(kw_only=True)
class SpendBudget:
    """At most ``limit_usd`` per ``window`` for ``scope``.

    ``match`` narrows a ``route`` or ``key`` budget to that one route name or key; without it
    each route (or key) has its own counter with this limit. A ``key`` budget applies only to
    calls that pass a key. ``name`` labels the budget in errors and status (a label is made up
    from the rest when absent).
    """

    scope: Scope = attrs.field(validator=_one_of(_SCOPES))
    window: Window = attrs.field(validator=_one_of(_WINDOWS))
    limit_usd: float = attrs.field(converter=_limit, validator=_limit_validator)
    match: str | None = attrs.field(default=None, validator=_optional_text)
    name: str | None = attrs.field(default=None, validator=_optional_text)

    @match.validator
    def _match_needs_a_subject(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and self.scope == "global":
            raise ArgumentError(
                "SpendBudget.match narrows a 'route' or 'key' budget to one route or key; a "
                "'global' budget covers every call, so drop match or change the scope"
            )

    @property
    def label(self) -> str:
        if self.name is not None:
            return repr(self.name)
        subject = f" {self.match!r}" if self.match is not None else ""
        each = "each " if self.scope != "global" and self.match is None else ""
        return f"{each}{self.scope}{subject} per {self.window}"

    def subject_for(self, *, route: str, key: str | None) -> str | None:
        """What this budget counts a call under (``*`` for global), or None if it does not
        apply to the call."""
        if self.scope == "global":
            return "*"
        subject = route if self.scope == "route" else key
        if subject is None or (self.match is not None and self.match != subject):
            return None
        return subject


# --------------------------------------------------------------------------- values


@attrs.frozen(kw_only=True)
class _Counter:
    """One counter: what it counts (scope, subject, window) and which window instance."""

    scope: Scope
    subject: str
    window: Window
    start: float

    def key(self, part: Literal["total", "settled"]) -> str:
        subject = quote(self.subject, safe="*")
        return f"spend:{self.scope}:{subject}:{self.window}:{self.start:.0f}:{part}"

    def moved_to(self, wall_now: float) -> _Counter:
        """The same counter in the window holding ``wall_now``."""
        return attrs.evolve(self, start=window_bounds(self.window, wall_now)[0])

    def expires_at(self) -> float:
        return window_bounds(self.window, self.start)[1]


@attrs.frozen(kw_only=True)
class Reservation:
    """What ``reserve`` took: ``amount_usd`` (``units`` nano-dollars, as the counters hold it)
    on each counter in ``counters``. Settle or release it exactly once."""

    amount_usd: float
    units: int
    counters: tuple[_Counter, ...]


@attrs.frozen(kw_only=True)
class SpendStatus:
    """One budget's counter now. ``reserved_usd`` is held by calls in flight; ``remaining_usd``
    is what a new reservation may still take (never negative, even when actual costs above
    their reservations took the counter over)."""

    budget: str  # a readable label, for messages
    scope: Scope
    subject: str | None
    window: Window
    window_start: float
    resets_at: float
    spent_usd: float
    reserved_usd: float
    limit_usd: float
    remaining_usd: float
    name: str = ""  # the budget's name, or its label when it has none (for metrics)


# --------------------------------------------------------------------------- the ledger


class SpendLedger:
    """Reserves, settles and reports spend against ``budgets`` in ``backend``."""

    def __init__(self, backend: StateBackend, budgets: Sequence[SpendBudget]) -> None:
        self._backend = backend
        self.budgets = tuple(budgets)
        seen: dict[str, int] = {}
        problems: list[ConfigProblem] = []
        for index, budget in enumerate(self.budgets):
            if budget.name is None:
                continue
            if budget.name in seen:
                problems.append(
                    ConfigProblem(
                        key=f"budgets[{index}].name",
                        message=f"{budget.name!r} is already the name of budgets"
                        f"[{seen[budget.name]}]; give each budget its own name",
                    )
                )
            seen.setdefault(budget.name, index)
        if problems:
            raise ConfigError(problems)

    def reserve(
        self, *, route: str, key: str | None, amount_usd: float, wall_now: float
    ) -> Reservation:
        """Hold ``amount_usd`` (the call's worst-case cost) on every budget that applies to a
        call of ``route`` by ``key``, or raise ``BudgetExceededError`` holding nothing."""
        return run(
            self._backend,
            self.reserve_flow(route=route, key=key, amount_usd=amount_usd, wall_now=wall_now),
        )

    def reserve_flow(
        self, *, route: str, key: str | None, amount_usd: float, wall_now: float
    ) -> Flow[Reservation]:
        """``reserve`` as a flow of backend operations (``guardedllm.state.flow``): every
        counter's add in one batch, then, if one refused, the others given back."""
        _check_amount("amount_usd", amount_usd)
        units = _to_units(amount_usd)
        binding = self._binding(route=route, key=key, wall_now=wall_now)
        if not binding:
            return Reservation(amount_usd=amount_usd, units=units, counters=())
        counters = list(binding)
        added = yield [
            ops.counter_add(
                counter.key("total"),
                units,
                limit=binding[counter][1],
                expires_at=counter.expires_at(),
                now=wall_now,
            )
            for counter in counters
        ]
        refused = [counter for counter, (ok, _) in zip(counters, added, strict=True) if not ok]
        if refused:
            taken = [counter for counter, (ok, _) in zip(counters, added, strict=True) if ok]
            if taken:
                yield [self._add(held, "total", -units, wall_now) for held in taken]
            counter = refused[0]
            budget, limit = binding[counter]
            total, settled = _parts(counter, (yield self._read(counter, wall_now)))
            raise self._refusal(budget, counter, units, limit, total=total, settled=settled)
        return Reservation(amount_usd=amount_usd, units=units, counters=tuple(counters))

    def settle(self, reservation: Reservation, actual_usd: float, *, wall_now: float) -> None:
        """Replace the reservation by the actual cost. The actual cost is recorded in full even
        when it is above the reservation or over a limit: spend that happened is never lost.
        A window that ended since the reservation gets its hold back, and the actual cost is
        counted in the window that holds ``wall_now``, when the cost became known."""
        run(self._backend, self.settle_flow(reservation, actual_usd, wall_now=wall_now))

    def settle_flow(
        self, reservation: Reservation, actual_usd: float, *, wall_now: float
    ) -> Flow[None]:
        """``settle`` as a flow of backend operations: every add in one batch."""
        _check_amount("actual_usd", actual_usd)
        actual = _to_units(actual_usd)
        adds = []
        for counter in reservation.counters:
            current = counter.moved_to(wall_now)
            if current == counter:
                adds.append(self._add(counter, "total", actual - reservation.units, wall_now))
            else:
                adds.append(self._add(counter, "total", -reservation.units, wall_now))
                adds.append(self._add(current, "total", actual, wall_now))
            adds.append(self._add(current, "settled", actual, wall_now))
        if adds:
            yield adds

    def release(self, reservation: Reservation, *, wall_now: float) -> None:
        """Give the reservation back: the call failed without costing anything."""
        run(self._backend, self.release_flow(reservation, wall_now=wall_now))

    def release_flow(self, reservation: Reservation, *, wall_now: float) -> Flow[None]:
        """``release`` as a flow of backend operations: every counter in one batch."""
        if reservation.counters:
            yield [
                self._add(counter, "total", -reservation.units, wall_now)
                for counter in reservation.counters
            ]

    def spent(
        self,
        *,
        scope: Scope,
        window: Window,
        wall_now: float,
        route: str | None = None,
        key: str | None = None,
    ) -> SpendStatus:
        """The status of the counter for ``scope`` (with its ``route`` or ``key``) and
        ``window``, under the tightest budget that applies to it. Raises ``ValueError`` when no
        budget does: spend is only counted for configured budgets."""
        subject = {"global": "*", "route": route, "key": key}[scope]
        if subject is None:
            raise ArgumentError(f"spent(scope={scope!r}) needs {scope}= to say which {scope}")
        matching = [
            b
            for b in self.budgets
            if b.scope == scope
            and b.window == window
            and b.subject_for(route=subject, key=subject) == subject
        ]
        if not matching:
            raise ArgumentError(
                f"no spend budget with scope {scope!r} and window {window!r} applies to "
                f"{subject!r}; spend is only counted for configured budgets, so add one"
            )
        budget = min(matching, key=lambda b: b.limit_usd)
        return self._status(budget, subject, wall_now)

    def statuses(
        self, *, wall_now: float, routes: Iterable[str] = (), keys: Iterable[str] = ()
    ) -> tuple[SpendStatus, ...]:
        """Every budget's status now, in config order: one for a global or ``match``ed budget,
        one per name in ``routes`` (or ``keys``) for a budget over each route (or key)."""
        routes, keys = tuple(routes), tuple(keys)
        found: list[SpendStatus] = []
        for budget in self.budgets:
            if budget.scope == "global":
                subjects: tuple[str, ...] = ("*",)
            elif budget.match is not None:
                subjects = (budget.match,)
            else:
                subjects = routes if budget.scope == "route" else keys
            found.extend(self._status(budget, subject, wall_now) for subject in subjects)
        return tuple(found)

    # ---------------------------------------------------------------- pieces

    def _binding(
        self, *, route: str, key: str | None, wall_now: float
    ) -> dict[_Counter, tuple[SpendBudget, int]]:
        """Each counter a call of ``route`` by ``key`` counts against, with the budget whose
        limit binds it (the smallest). Ordered as the budgets are, so that reservations from
        different callers take counters in one order."""
        binding: dict[_Counter, tuple[SpendBudget, int]] = {}
        for budget in self.budgets:
            subject = budget.subject_for(route=route, key=key)
            if subject is None:
                continue
            counter = _Counter(
                scope=budget.scope,
                subject=subject,
                window=budget.window,
                start=window_bounds(budget.window, wall_now)[0],
            )
            limit = _limit_units(budget.limit_usd)
            held = binding.get(counter)
            if held is None or limit < held[1]:
                binding[counter] = (budget, limit)
        return binding

    @staticmethod
    def _add(
        counter: _Counter, part: Literal["total", "settled"], units: int, wall_now: float
    ) -> Op:
        return ops.counter_add(
            counter.key(part), units, limit=None, expires_at=counter.expires_at(), now=wall_now
        )

    @staticmethod
    def _read(counter: _Counter, wall_now: float) -> Op:
        """The read of a counter's ``total`` and ``settled``; ``_parts`` reads its answer."""
        return ops.counters_get([counter.key("total"), counter.key("settled")], now=wall_now)

    def _status(self, budget: SpendBudget, subject: str, wall_now: float) -> SpendStatus:
        start, end = window_bounds(budget.window, wall_now)
        counter = _Counter(scope=budget.scope, subject=subject, window=budget.window, start=start)
        total, settled = _parts(counter, self._read(counter, wall_now).apply(self._backend))
        limit = _limit_units(budget.limit_usd)
        return SpendStatus(
            budget=budget.label,
            name=budget.name if budget.name is not None else budget.label,
            scope=budget.scope,
            subject=None if budget.scope == "global" else subject,
            window=budget.window,
            window_start=start,
            resets_at=end,
            spent_usd=_usd(settled),
            # Settling writes two counters one after the other; a read between them can see
            # a settled amount not yet taken off ``total``. Never report a negative hold.
            reserved_usd=_usd(max(0, total - settled)),
            limit_usd=budget.limit_usd,
            remaining_usd=_usd(max(0, limit - total)),
        )

    @staticmethod
    def _refusal(
        budget: SpendBudget, counter: _Counter, units: int, limit: int, *, total: int, settled: int
    ) -> BudgetExceededError:
        reserved = max(0, total - settled)
        subject = (
            ""
            if budget.match is not None or counter.scope == "global"
            else (f" ({counter.scope} {counter.subject!r})")
        )
        return BudgetExceededError(
            f"spend budget {budget.label}{subject} would be exceeded: this call's worst-case "
            f"cost {_money(_usd(units))} on top of {_money(_usd(settled))} spent and "
            f"{_money(_usd(reserved))} reserved goes over its {_money(budget.limit_usd)} limit "
            f"for the {counter.window} from {_iso(counter.start)}. Nothing was sent. Wait for "
            f"the window to reset at {_iso(counter.expires_at())}, raise limit_usd, or lower "
            "max_tokens or route to a cheaper model to cut the worst case.",
            cost_usd=_usd(units),
            limit_usd=budget.limit_usd,
        )


def _parts(counter: _Counter, values: Mapping[str, float]) -> tuple[int, int]:
    """A counter's ``total`` and ``settled``, as ``SpendLedger._read`` answers them."""
    return round(values[counter.key("total")]), round(values[counter.key("settled")])
