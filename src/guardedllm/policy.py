"""``Policy``: the guard settings of a call, from config or per call.

Precedence, most specific first: ``create(..., policy=...)``, the client's ``policy=``, the
route's own settings, ``[defaults]`` in the config, then ``guardedllm.defaults``.
A field left as None defers to the next level.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from guardedllm import defaults
from guardedllm._checks import require_flag, require_number, require_text
from guardedllm.errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from guardedllm.types import ChatCompletion

__all__ = ["Policy", "call_policy", "current_policy", "policy_scope"]


def _number(attribute: attrs.Attribute[Any], value: object, *, whole: bool = False) -> None:
    require_number("Policy", attribute.name, value, whole=whole, inherits=True)


def _flag(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    require_flag("Policy", attribute.name, value)


def _text(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    require_text("Policy", attribute.name, value)


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _number(attribute, value)
    if value is not None and not value > 0:
        raise ArgumentError(
            f"Policy.{attribute.name} must be > 0 (or None to inherit); got {value!r}"
        )


def _seconds(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    _positive(_, attribute, value)
    if value is not None and value > defaults.MAX_SECONDS:
        raise ArgumentError(
            f"Policy.{attribute.name} must be at most {defaults.MAX_SECONDS:g} seconds (a day); "
            f"got {value!r}"
        )


def _at_least_one(_: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None:
        _number(attribute, value, whole=True)
    if value is not None and value < 1:
        raise ArgumentError(
            f"Policy.{attribute.name} must be >= 1 (or None to inherit); got {value!r}"
        )


def _hedge(_: Any, attribute: attrs.Attribute[Any], value: float | str | None) -> None:
    if value is None or value == "p95":
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= defaults.MAX_SECONDS
    ):
        raise ArgumentError(
            f'Policy.hedge_after_s must be a delay in seconds > 0, "p95" (the deployment\'s '
            f"recent p95 latency) or None; got {value!r}"
        )


def _names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ArgumentTypeError(
            "Policy.fallback and Policy.allowed_deployments take a list of model or alias "
            f"names, not one string (got {value!r}); write [{value!r}]"
        )
    return tuple(value)


def _tags(value: Any) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ArgumentTypeError(f"Policy.tags must be a dict of str to str; got {value!r}")
    return MappingProxyType(dict(value))


def _callable(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ArgumentTypeError(
            f"Policy.{attribute.name} must be a function taking the ChatCompletion and "
            f"returning True to accept it; got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Policy:
    """Guard settings. ``deadline_s`` bounds the whole call (every attempt, backoff and
    fallback); ``max_cost_usd`` caps the whole call: it refuses, before sending, a deployment
    (a fallback, an escalation, a hedge) whose worst-case cost is higher than what the call's
    other attempts left of it; ``max_attempts`` is per deployment; ``timeout_s`` bounds one
    HTTP attempt; ``fallback`` replaces the route's ordered plan with these model or alias names;
    ``exact_tokens`` asks vendors whose tokenizer we only stand in for (Anthropic, Gemini) to
    count the input themselves, one extra request per call, before the guards decide;
    ``budget_key`` names who the call is for (a tenant, a user) for per-key spend budgets;
    ``first_chunk_timeout_s`` bounds how long a stream may take to deliver its first chunk: a
    stream that is slower fails that attempt, which is retried or falls back like any failure;
    ``hedge_after_s`` sends a slow first attempt to the next deployment of the plan as well
    (to the same deployment again when none follows it), after that delay or the deployment's
    recent p95 latency ("p95"); the first answer (a stream's first chunk) wins and the other is
    cancelled. Hedges draw on the retry budget and on ``max_cost_usd``.

    Routing: ``allowed_deployments`` restricts the plan to these model or alias names (the
    others are left out, and say so in ``resp.guard.plan``); ``split_arm`` assigns every split
    on the way to that arm (by its label, or the name it uses) instead of the sticky key;
    ``route_key`` is the sticky key for splits and shadow sampling (default: the request's
    ``user``); ``tags`` are matched by routes' ``when = { tags = ... }`` rules (a call's tags
    are laid over a scope's); ``validator`` judges an answer on an escalating route (False:
    escalate to the larger model); ``fallback_on_client_error`` lets a 400/401/403/413/422 fall
    back (or escalate) to the next deployment instead of failing the call (useful when the
    deployments are on different vendors, which may reject what another accepts; a 404 falls
    back anyway).

    Counting: a ``max_tokens`` above a deployment's ``max_output_tokens`` passes that deployment
    over (``MaxTokensExceededError``) unless ``clamp_max_tokens`` sends it with the deployment's
    limit instead; ``refuse_inexact`` passes over a deployment whose estimate is not exact (a
    stand-in tokenizer, media bounded rather than counted; with ``exact_tokens`` the vendor's
    count comes first), for calls whose budget or cap must rest on counted figures."""

    deadline_s: float | None = attrs.field(default=None, validator=_seconds)
    max_cost_usd: float | None = attrs.field(default=None, validator=_positive)
    max_attempts: int | None = attrs.field(default=None, validator=_at_least_one)
    timeout_s: float | None = attrs.field(default=None, validator=_seconds)
    fallback: tuple[str, ...] | None = attrs.field(default=None, converter=_names)
    exact_tokens: bool | None = attrs.field(default=None, validator=_flag)
    budget_key: str | None = attrs.field(default=None, validator=_text)
    first_chunk_timeout_s: float | None = attrs.field(default=None, validator=_seconds)
    hedge_after_s: float | Literal["p95"] | None = attrs.field(default=None, validator=_hedge)
    allowed_deployments: tuple[str, ...] | None = attrs.field(default=None, converter=_names)
    split_arm: str | None = attrs.field(default=None, validator=_text)
    route_key: str | None = attrs.field(default=None, validator=_text)
    tags: Mapping[str, str] | None = attrs.field(default=None, converter=_tags, hash=False)
    validator: Callable[[ChatCompletion], bool] | None = attrs.field(
        default=None, validator=_callable
    )
    fallback_on_client_error: bool | None = attrs.field(default=None, validator=_flag)
    clamp_max_tokens: bool | None = attrs.field(default=None, validator=_flag)
    refuse_inexact: bool | None = attrs.field(default=None, validator=_flag)

    def over(self, base: Policy | None) -> Policy:
        """This policy's set fields laid over ``base``'s."""
        if base is None:
            return self
        changes = {
            f.name: getattr(self, f.name)
            for f in attrs.fields(Policy)
            if getattr(self, f.name) is not None
        }
        if self.tags is not None and base.tags is not None:
            changes["tags"] = {**base.tags, **self.tags}
        return attrs.evolve(base, **changes)


_SCOPED: ContextVar[Policy | None] = ContextVar("guardedllm_policy_scope", default=None)


def current_policy(policy: Policy | None = None) -> Policy | None:
    """``policy`` (a call's own) laid over the policy of the innermost ``policy_scope``."""
    scoped = _SCOPED.get()
    if scoped is None:
        return policy
    return policy.over(scoped) if policy is not None else scoped


def call_policy(policy: Policy | None, timeout: float | None) -> Policy | None:
    """The policy of one call: its own ``policy=`` over the innermost scope's, with ``timeout=``
    (each HTTP attempt's limit, as the openai SDK's argument is) over both."""
    policy = current_policy(policy)
    if timeout is not None:
        policy = Policy(timeout_s=timeout).over(policy)
    return policy


@contextlib.contextmanager
def policy_scope(policy: Policy) -> Iterator[Policy]:
    """Apply ``policy`` to every call made inside the ``with`` block, in this thread or task.

    Scopes nest (the inner one's set fields win) and a call's own ``policy=`` wins over both.
    The scope lives in a context variable: a thread started inside the block does not see it
    (each thread has its own context), and each asyncio or trio task sees the scope that was
    current when it was created, so concurrent tasks never see each other's scopes.
    """
    if not isinstance(policy, Policy):
        raise ArgumentTypeError(f"policy_scope takes a guardedllm.Policy; got {policy!r}")
    effective = current_policy(policy)
    assert effective is not None
    token = _SCOPED.set(effective)
    try:
        yield effective
    finally:
        _SCOPED.reset(token)
