"""Cost arithmetic: tokens times per-million-token prices, in US dollars.

Token categories follow OpenAI's usage report (``guardedllm.types.Usage``): cached input tokens
are part of the input tokens and reasoning tokens part of the output tokens. Each part is priced
at its own rate when the deployment has one, else at the plain input / output rate.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from guardedllm.errors import ArgumentError

__all__ = ["Prices", "cost_usd", "priced"]

_PER_MTOK = 1_000_000


def _price(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ArgumentError(
            f"{attribute.name} must be a finite number of US dollars per million tokens, >= 0; "
            f"got {value!r}."
        )


@attrs.frozen(kw_only=True)
class Prices:
    """A deployment's prices, in US dollars per million tokens.

    ``cached_input_usd_per_mtok`` prices input tokens served from the vendor's prompt cache
    (None: the plain input rate); ``reasoning_usd_per_mtok`` prices reasoning tokens (None: the
    plain output rate, which is how OpenAI bills them).
    """

    input_usd_per_mtok: float = attrs.field(validator=_price)
    output_usd_per_mtok: float = attrs.field(validator=_price)
    cached_input_usd_per_mtok: float | None = attrs.field(default=None, validator=_price)
    reasoning_usd_per_mtok: float | None = attrs.field(default=None, validator=_price)


def cost_usd(
    prices: Prices,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float:
    """The cost of one call, in US dollars.

    ``cached_input_tokens`` are part of ``input_tokens`` and ``reasoning_tokens`` part of
    ``output_tokens``; a part larger than its whole is an error, not something to guess about.
    """
    if min(input_tokens, output_tokens, cached_input_tokens, reasoning_tokens) < 0:
        raise ArgumentError(
            "token counts must be >= 0; got "
            f"input_tokens={input_tokens}, output_tokens={output_tokens}, "
            f"cached_input_tokens={cached_input_tokens}, reasoning_tokens={reasoning_tokens}."
        )
    if cached_input_tokens > input_tokens:
        raise ArgumentError(
            f"cached_input_tokens ({cached_input_tokens}) are part of input_tokens "
            f"({input_tokens}) and cannot exceed them: pass the full prompt count as input_tokens."
        )
    if reasoning_tokens > output_tokens:
        raise ArgumentError(
            f"reasoning_tokens ({reasoning_tokens}) are part of output_tokens ({output_tokens}) "
            "and cannot exceed them: pass the full completion count as output_tokens."
        )
    return priced(
        prices,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        reasoning_tokens=reasoning_tokens,
    )


def priced(
    prices: Prices,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float:
    """``cost_usd`` for counts the caller has already checked (the estimate's own, which are
    non-negative and whole by construction): the arithmetic alone."""
    cached_rate = prices.cached_input_usd_per_mtok
    if cached_rate is None:
        cached_rate = prices.input_usd_per_mtok
    reasoning_rate = prices.reasoning_usd_per_mtok
    if reasoning_rate is None:
        reasoning_rate = prices.output_usd_per_mtok
    micro_usd = (
        (input_tokens - cached_input_tokens) * prices.input_usd_per_mtok
        + cached_input_tokens * cached_rate
        + (output_tokens - reasoning_tokens) * prices.output_usd_per_mtok
        + reasoning_tokens * reasoning_rate
    )
    return micro_usd / _PER_MTOK
