"""The pre-flight estimate of one request against one deployment: tokens, fit and cost.

Worst case first: ``cost_usd_max`` assumes every output token the request may produce is produced
(at the dearer of the output and reasoning rates) and no input is served from a prompt cache. It is
what spend budgets reserve and ``max_cost_usd`` caps compare against, so it must never be low.
``cost_usd_expected`` is a planning figure for dashboards and routing, not a bound.

A part no tokenizer counts is bounded: audio, video and PDFs at the vendor's published rates
(``MediaTokenRates``), and a part that cannot be read at all (an OpenAI ``file_id``) by the
context window: the input is counted as all of the window the output leaves free, the most a
vendor can bill for it.

For a deployment whose vendor tokenizer is not the tiktoken encoding named (Anthropic, Gemini,
...), the count is scaled: ``ceil(count * calibration * (1 + safety_margin))``, and the estimate is
marked not exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError, InvalidRequestError
from guardedllm.estimate._cost import Prices, priced
from guardedllm.estimate._count import TokenCount, count_chat_tokens
from guardedllm.estimate._encodings import get_encoding
from guardedllm.estimate._images import GPT_4O_IMAGE_RATES, ImageTokenRates
from guardedllm.estimate._media import MEDIA_RATES_CEILING, MediaTokenRates

__all__ = ["DEFAULT_EXPECTED_OUTPUT_TOKENS", "Estimate", "estimate_request", "with_counted_input"]

DEFAULT_EXPECTED_OUTPUT_TOKENS: Final = defaults.EXPECTED_OUTPUT_TOKENS

_non_negative = attrs.validators.ge(0)


@attrs.frozen(kw_only=True)
class Estimate:
    """What a request will cost on one deployment, known before sending it.

    ``input_tokens`` is the prompt as the vendor will count it (exactly when ``exact``);
    ``max_output_tokens`` the most output the request allows; ``fits_context`` whether both fit
    the context window; ``fits_output`` whether the caller's ``max_tokens`` is within the
    deployment's ``max_output_tokens`` (when it is not, the figures are for the deployment's
    limit, and a call is refused unless its policy clamps: ``Policy(clamp_max_tokens=True)``);
    ``notes`` what was approximated or adjusted (a clamped ``max_tokens`` is noted without making
    an exact estimate inexact).
    """

    deployment: str
    input_tokens: int = attrs.field(validator=_non_negative)
    max_output_tokens: int = attrs.field(validator=_non_negative)
    cost_usd_max: float = attrs.field(validator=_non_negative)
    cost_usd_expected: float = attrs.field(validator=_non_negative)
    fits_context: bool
    exact: bool
    tokenizer: str
    notes: tuple[str, ...] = ()
    fits_output: bool = True
    # The tokenizer's own count, before calibration and margin: what calibration learns from.
    counted_tokens: int = attrs.field(default=0, validator=_non_negative)


def estimate_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int | None = None,
    deployment_name: str,
    tokenizer: str,
    context_window: int,
    max_output_tokens: int,
    prices: Prices,
    calibration: float = 1.0,
    safety_margin: float = 0.0,
    exact_tokenizer: bool = True,
    expected_output_tokens: int | None = None,
    image_rates: ImageTokenRates = GPT_4O_IMAGE_RATES,
    media_rates: MediaTokenRates = MEDIA_RATES_CEILING,
    count: TokenCount | None = None,
) -> Estimate:
    """Estimate ``messages`` (+ ``tools``, ``max_tokens``) on the deployment described.
    ``count`` is the messages' count with ``tokenizer`` when the caller already has it (a
    route estimating several deployments that share a tokenizer counts once).

    ``max_tokens`` is the caller's cap (None: the deployment's ``max_output_tokens``);
    ``exact_tokenizer`` says whether ``tokenizer`` is the vendor's own; ``calibration`` and
    ``safety_margin`` scale the count when it is not. ``expected_output_tokens`` defaults to
    ``DEFAULT_EXPECTED_OUTPUT_TOKENS``, capped by the output limit.
    """
    if context_window <= 0 or max_output_tokens <= 0:
        raise ArgumentError(
            f"{deployment_name}: context_window ({context_window}) and max_output_tokens "
            f"({max_output_tokens}) must be positive; fix the deployment's registry entry."
        )
    if not (calibration > 0 and math.isfinite(calibration)) or not (
        safety_margin >= 0 and math.isfinite(safety_margin)
    ):
        raise ArgumentError(
            f"{deployment_name}: calibration ({calibration}) must be > 0 and safety_margin "
            f"({safety_margin}) >= 0; fix the deployment's registry entry."
        )
    if max_tokens is not None and max_tokens <= 0:
        raise InvalidRequestError(
            f"max_tokens is {max_tokens}: pass a positive number, or None for the deployment's "
            f"limit ({max_output_tokens})."
        )

    if count is None:
        count = count_chat_tokens(
            messages,
            encoding=get_encoding(tokenizer),
            tools=tools,
            image_rates=image_rates,
            media_rates=media_rates,
        )
    notes = list(count.notes)
    if exact_tokenizer:
        input_tokens = count.tokens
    else:
        input_tokens = math.ceil(count.tokens * calibration * (1 + safety_margin))
        notes.append(
            f"{tokenizer} stands in for {deployment_name}'s own tokenizer: {count.tokens} tokens "
            f"scaled by calibration {calibration:g} and safety margin {safety_margin:g}"
        )

    max_output = max_output_tokens if max_tokens is None else min(max_tokens, max_output_tokens)
    if max_tokens is not None and max_tokens > max_output_tokens:
        notes.append(
            f"max_tokens {max_tokens} is above {deployment_name}'s max_output_tokens "
            f"{max_output_tokens}: estimated with {max_output_tokens}"
        )

    if count.fills_window:
        # A vendor bills no more input than its window holds beside the output it may give.
        input_tokens = max(input_tokens, context_window - max_output)

    expected = DEFAULT_EXPECTED_OUTPUT_TOKENS
    if expected_output_tokens is not None:
        expected = max(0, expected_output_tokens)
    return _priced(
        deployment=deployment_name,
        input_tokens=input_tokens,
        max_output=max_output,
        expected_output=min(expected, max_output),
        prices=prices,
        context_window=context_window,
        exact=exact_tokenizer and count.exact,
        tokenizer=tokenizer,
        notes=tuple(notes),
        counted_tokens=count.tokens,
        fits_output=max_tokens is None or max_tokens <= max_output_tokens,
    )


def with_counted_input(
    estimate: Estimate, input_tokens: int, *, prices: Prices, context_window: int, source: str
) -> Estimate:
    """``estimate`` with the input the vendor itself counted (``source`` says how): exact,
    repriced and refitted."""
    return _priced(
        deployment=estimate.deployment,
        input_tokens=input_tokens,
        max_output=estimate.max_output_tokens,
        expected_output=min(DEFAULT_EXPECTED_OUTPUT_TOKENS, estimate.max_output_tokens),
        prices=prices,
        context_window=context_window,
        exact=True,
        tokenizer=estimate.tokenizer,
        notes=(f"input tokens counted by {source}",),
        counted_tokens=estimate.counted_tokens,
        fits_output=estimate.fits_output,
    )


def _priced(
    *,
    deployment: str,
    input_tokens: int,
    max_output: int,
    expected_output: int,
    prices: Prices,
    context_window: int,
    exact: bool,
    tokenizer: str,
    notes: tuple[str, ...],
    counted_tokens: int,
    fits_output: bool,
) -> Estimate:
    reasoning_is_dearer = (prices.reasoning_usd_per_mtok or 0.0) > prices.output_usd_per_mtok
    # The counts are the estimate's own: non-negative, and no part above its whole.
    cost_max = priced(
        prices,
        input_tokens=input_tokens,
        output_tokens=max_output,
        reasoning_tokens=max_output if reasoning_is_dearer else 0,
    )
    cost_expected = priced(prices, input_tokens=input_tokens, output_tokens=expected_output)
    return Estimate(
        deployment=deployment,
        input_tokens=input_tokens,
        max_output_tokens=max_output,
        cost_usd_max=cost_max,
        cost_usd_expected=cost_expected,
        fits_context=input_tokens + max_output <= context_window,
        exact=exact,
        tokenizer=tokenizer,
        notes=notes,
        counted_tokens=counted_tokens,
        fits_output=fits_output,
    )
