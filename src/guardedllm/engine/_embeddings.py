"""What an embeddings call does differently in the engine, in one place.

An embeddings call runs the chat call's flow (plan, unavailable marks, breaker, pre-flight
estimate and cost cap, spend reservation, rate limits, retries and fallback within one
deadline, settlement with the vendor's usage): the request carries ``embedding`` (see
``ChatRequest.embedding``) and the few decisions that differ dispatch on it here. What cannot
apply to an embedding is refused with a typed error, never ignored: a stream, hedging,
escalation (there is no "better answer" to escalate for), a shadow copy, and a deployment of
the other kind (``ModelKindError``, either way round).
"""

from __future__ import annotations

import attrs

from guardedllm import defaults
from guardedllm.errors import EmbeddingBatchError, InvalidRequestError, ModelKindError
from guardedllm.estimate import Estimate
from guardedllm.providers.base import EmbeddingWire, Target, WireFormat
from guardedllm.registry import Deployment
from guardedllm.routing import Plan
from guardedllm.types import ChatRequest, CreateEmbeddingResponse, EmbeddingUsage

__all__ = ["check_batch", "check_kinds", "embedding_wire", "with_usage"]

_OPENAI_KINDS = frozenset({"openai", "azure-openai", "openai-compatible"})
_WHAT = {"chat": "a chat model", "embedding": "an embedding model"}
_CREATE = {"chat": "chat.completions.create", "embedding": "embeddings.create"}


def check_kinds(plan: Plan, request: ChatRequest, *, hedging: bool) -> None:
    """Refuse a call that reaches a deployment of the other kind, and an embeddings call on
    a plan or policy that asks for what an embedding cannot do."""
    wanted = "chat" if request.embedding is None else "embedding"
    for deployment in plan.deployments:
        if deployment.kind != wanted:
            raise ModelKindError(
                f"{deployment.name} is {_WHAT[deployment.kind]}, and this call is for "
                f"{_WHAT[wanted]}: call {_CREATE[deployment.kind]} for it, or send this call "
                f"to {_WHAT[wanted]}.",
                deployment=deployment.name,
                kind=deployment.kind,
            )
    if request.embedding is None:
        return
    refused = (
        "escalation (escalate_to)" if plan.escalation is not None else None,
        "a shadow copy (shadow)" if plan.shadow is not None else None,
        "hedging (hedge_after_s)" if hedging else None,
    )
    for what in refused:
        if what is not None:
            raise InvalidRequestError(
                f"{plan.requested!r} asks for {what}, which does not apply to embeddings; "
                "remove it from the route or policy used for embeddings."
            )


def embedding_wire(wire: WireFormat, target: Target) -> EmbeddingWire:
    """``wire`` as one that reads embeddings answers; InvalidRequestError for a vendor with
    no embeddings endpoint (Anthropic)."""
    if not isinstance(wire, EmbeddingWire):
        raise InvalidRequestError(
            f"{target.deployment}: {target.kind} providers have no embeddings endpoint; put "
            "the model behind an openai, azure-openai, openai-compatible or gemini provider."
        )
    return wire


def check_batch(
    deployment: Deployment, kind: str, item_tokens: tuple[int, ...], estimate: Estimate
) -> None:
    """Refuse inputs the deployment's vendor would refuse in one request, saying how to split
    them: too many, one over the model's input limit, or (OpenAI) too many tokens in all."""
    limit = deployment.max_batch_items or (
        defaults.GEMINI_EMBEDDING_MAX_BATCH_ITEMS
        if kind == "gemini"
        else defaults.EMBEDDING_MAX_BATCH_ITEMS
    )
    if len(item_tokens) > limit:
        raise EmbeddingBatchError(
            f"{deployment.name}: {len(item_tokens)} inputs in one request, over its limit of "
            f"{limit}; split the input list into batches of at most {limit}.",
            deployment=deployment.name,
            limit="items",
        )
    if not estimate.fits_context:
        scale = estimate.input_tokens / max(estimate.counted_tokens, 1)
        index = max(range(len(item_tokens)), key=item_tokens.__getitem__)
        raise EmbeddingBatchError(
            f"{deployment.name}: input[{index}] has about {round(item_tokens[index] * scale)} "
            f"tokens, over the {deployment.context_window} one input may have; split that "
            "text into shorter pieces.",
            deployment=deployment.name,
            limit="item_tokens",
            index=index,
        )
    most = defaults.OPENAI_EMBEDDING_MAX_BATCH_TOKENS
    if kind in _OPENAI_KINDS and estimate.input_tokens > most:
        raise EmbeddingBatchError(
            f"{deployment.name}: the inputs have {estimate.input_tokens} tokens in all, over "
            f"the {most} one request may carry; split the input list into smaller batches.",
            deployment=deployment.name,
            limit="batch_tokens",
        )


def with_usage(result: CreateEmbeddingResponse, estimate: Estimate) -> CreateEmbeddingResponse:
    """The answer with usage: the vendor's, or, when it reports none (Gemini), the estimate's
    input tokens, which its notes say."""
    if result.usage is not None:
        return result
    tokens = estimate.input_tokens
    return attrs.evolve(result, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
