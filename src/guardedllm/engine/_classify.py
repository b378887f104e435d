"""What a failed attempt means: for the call (retry here, try elsewhere, or stop) and for the
deployment's circuit breaker (a failure of the deployment, or not its fault).

Tables, not if-chains: a status maps to its verdict in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from guardedllm.errors import (
    AuthenticationError,
    ContextWindowExceededError,
    GuardedLLMError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
)

__all__ = ["STATUS_VERDICTS", "Verdict", "breaker_outcome", "classify"]

Verdict = Literal["retry", "fallback", "fail"]

# What a vendor status means for the call. Anything >= 500 not listed retries; any other 4xx
# not listed fails. 404 falls back without a retry: the model is missing here, not flaky.
STATUS_VERDICTS: Mapping[int, Verdict] = {
    400: "fail",
    401: "fail",
    403: "fail",
    404: "fallback",
    408: "retry",
    409: "retry",
    413: "fail",
    422: "fail",
    429: "retry",
}

_VERDICTS: Mapping[str, Verdict] = {"retry": "retry", "fallback": "fallback", "fail": "fail"}

# Statuses that say nothing about the deployment's health: the caller's own mistakes, and 429,
# which the rate limiter answers for. They never trip a breaker.
_NOT_THE_DEPLOYMENTS_FAULT = frozenset({400, 401, 403, 404, 413, 422, 429})


def classify(error: GuardedLLMError, overrides: Mapping[int, str] | None = None) -> Verdict:
    """Whether a failed attempt is worth retrying, worth trying elsewhere, or final.
    ``overrides`` is the provider's own table (``[providers.NAME.outcomes]``), consulted first."""
    if overrides and isinstance(error, ProviderError) and error.status is not None:
        verdict = _VERDICTS.get(overrides.get(error.status, ""))
        if verdict is not None:
            return verdict
    if isinstance(error, (ModelNotFoundError, ContextWindowExceededError)):
        return "fallback"  # missing, or too small: here, not flaky; another may serve it
    if isinstance(error, ProviderError) and error.status is not None:
        if error.status >= 500:
            return "retry"
        return STATUS_VERDICTS.get(error.status, "fail")
    if isinstance(error, (InvalidRequestError, AuthenticationError)):
        return "fail"
    return "retry"  # transport failures, unparseable bodies, error events before any chunk


def breaker_outcome(error: GuardedLLMError) -> Literal["failure", "ignored"]:
    """How a failed attempt counts for the deployment's circuit breaker."""
    if isinstance(error, ProviderError) and error.status in _NOT_THE_DEPLOYMENTS_FAULT:
        return "ignored"
    return "failure"
