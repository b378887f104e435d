"""``Policy``: the guard settings of a call, from config or per call.

Precedence, most specific first: ``create(..., policy=...)``, the client's ``policy=``, the
route's own settings, ``[defaults]`` in the config, then ``guardedllm.defaults``.
A field left as None defers to the next level.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

__all__ = ["Policy"]


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"Policy.{attribute.name} must be > 0 (or None to inherit); got {value!r}")


def _at_least_one(_: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(
            f"Policy.{attribute.name} must be >= 1 (or None to inherit); got {value!r}"
        )


def _hedge(_: Any, attribute: attrs.Attribute[Any], value: float | str | None) -> None:
    if value is None or value == "p95":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(
            f'Policy.hedge_after_s must be a delay in seconds > 0, "p95" (the deployment\'s '
            f"recent p95 latency) or None; got {value!r}"
        )


def _names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("Policy.fallback takes a list of model or alias names, not one string")
    return tuple(value)


@attrs.frozen(kw_only=True)
class Policy:
    """Guard settings. ``deadline_s`` bounds the whole call (every attempt, backoff and
    fallback); ``max_cost_usd`` refuses, before sending, a deployment whose worst-case cost is
    higher; ``max_attempts`` is per deployment; ``timeout_s`` bounds one HTTP attempt;
    ``fallback`` replaces the route's ordered plan with these model or alias names;
    ``exact_tokens`` asks vendors whose tokenizer we only stand in for (Anthropic, Gemini) to
    count the input themselves, one extra request per call, before the guards decide;
    ``budget_key`` names who the call is for (a tenant, a user) for per-key spend budgets;
    ``first_chunk_timeout_s`` bounds how long a stream may take to deliver its first chunk: a
    stream that is slower fails that attempt, which is retried or falls back like any failure;
    ``hedge_after_s`` sends a slow first attempt to the next deployment of the plan as well,
    after that delay or the deployment's recent p95 latency ("p95"); the first answer wins and
    the other is cancelled. Hedges draw on the retry budget; streams are not hedged."""

    deadline_s: float | None = attrs.field(default=None, validator=_positive)
    max_cost_usd: float | None = attrs.field(default=None, validator=_positive)
    max_attempts: int | None = attrs.field(default=None, validator=_at_least_one)
    timeout_s: float | None = attrs.field(default=None, validator=_positive)
    fallback: tuple[str, ...] | None = attrs.field(default=None, converter=_names)
    exact_tokens: bool | None = None
    budget_key: str | None = None
    first_chunk_timeout_s: float | None = attrs.field(default=None, validator=_positive)
    hedge_after_s: float | Literal["p95"] | None = attrs.field(default=None, validator=_hedge)

    def over(self, base: Policy | None) -> Policy:
        """This policy's set fields laid over ``base``'s."""
        if base is None:
            return self
        changes = {
            f.name: getattr(self, f.name)
            for f in attrs.fields(Policy)
            if getattr(self, f.name) is not None
        }
        return attrs.evolve(base, **changes)
