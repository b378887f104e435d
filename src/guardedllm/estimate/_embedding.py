"""The pre-flight estimate of an embeddings call: its inputs counted one by one, priced as input.

An embedding has no output: the worst case is the input's cost, and it is also the expected
cost. Each input is counted on its own, since vendors limit each input's tokens (the model's
``context_window``) as well as the number of inputs and, for OpenAI, the tokens of a request.
Text is encoded with ``encode_ordinary`` (as OpenAI counts it: a text holding
``<|endoftext|>`` is text); an input given as token ids counts as its length.

For a vendor whose tokenizer is not the tiktoken encoding named (Gemini), each count is scaled
as a chat estimate's is (``ceil(count * calibration * (1 + safety_margin))``), and the estimate
is not exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from guardedllm.estimate._cost import Prices, priced
from guardedllm.estimate._encodings import get_encoding
from guardedllm.estimate._estimate import Estimate

__all__ = ["count_embedding_inputs", "estimate_embedding"]


def count_embedding_inputs(
    inputs: Sequence[str | Sequence[int]], *, tokenizer: str
) -> tuple[int, ...]:
    """Each input's tokens with ``tokenizer``."""
    encode = get_encoding(tokenizer).encode_ordinary
    return tuple(len(encode(item)) if isinstance(item, str) else len(item) for item in inputs)


def estimate_embedding(
    item_tokens: Sequence[int],
    *,
    deployment_name: str,
    tokenizer: str,
    context_window: int,
    prices: Prices,
    calibration: float = 1.0,
    safety_margin: float = 0.0,
    exact_tokenizer: bool = True,
    notes: Sequence[str] = (),
) -> Estimate:
    """The estimate of inputs counted ``item_tokens`` on the deployment described.
    ``fits_context`` says whether every input is within ``context_window``, the most tokens
    one input may have; ``notes`` are added to the estimate's own."""
    counted = sum(item_tokens)
    said = list(notes)
    if exact_tokenizer:
        scaled = list(item_tokens)
    else:
        factor = calibration * (1 + safety_margin)
        scaled = [math.ceil(tokens * factor) for tokens in item_tokens]
        said.append(
            f"{tokenizer} stands in for {deployment_name}'s own tokenizer: {counted} tokens "
            f"scaled by calibration {calibration:g} and safety margin {safety_margin:g}"
        )
    input_tokens = sum(scaled)
    cost = priced(prices, input_tokens=input_tokens, output_tokens=0)
    return Estimate(
        deployment=deployment_name,
        input_tokens=input_tokens,
        max_output_tokens=0,
        cost_usd_max=cost,
        cost_usd_expected=cost,
        fits_context=max(scaled, default=0) <= context_window,
        exact=exact_tokenizer,
        tokenizer=tokenizer,
        notes=tuple(said),
        counted_tokens=counted,
    )
