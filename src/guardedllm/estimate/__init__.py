"""Token counting and cost arithmetic: pure functions over values, no I/O.

``get_encoding`` returns a tiktoken encoding (o200k_base and cl100k_base ship inside the package
and never download); ``count_chat_tokens`` counts a chat request's prompt tokens as the OpenAI
API does; ``cost_usd`` prices token counts; ``estimate_request`` puts them together for one
deployment. Importing this package reads no file: encodings load on first use.
"""

from __future__ import annotations

from guardedllm.estimate._calibration import CalibrationStats, Calibrator
from guardedllm.estimate._cost import Prices, cost_usd
from guardedllm.estimate._count import TokenCount, count_chat_tokens
from guardedllm.estimate._embedding import count_embedding_inputs, estimate_embedding
from guardedllm.estimate._encodings import BUNDLED_ENCODINGS, get_encoding
from guardedllm.estimate._estimate import (
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    Estimate,
    estimate_request,
    with_counted_input,
)
from guardedllm.estimate._images import (
    GPT_4O_IMAGE_RATES,
    GPT_4O_MINI_IMAGE_RATES,
    ImageTokenRates,
    image_tokens,
)
from guardedllm.estimate._media import (
    ANTHROPIC_MEDIA_RATES,
    GEMINI_MEDIA_RATES,
    MEDIA_RATES_CEILING,
    OPENAI_MEDIA_RATES,
    MediaTokenRates,
)

__all__ = [
    "ANTHROPIC_MEDIA_RATES",
    "BUNDLED_ENCODINGS",
    "DEFAULT_EXPECTED_OUTPUT_TOKENS",
    "GEMINI_MEDIA_RATES",
    "GPT_4O_IMAGE_RATES",
    "GPT_4O_MINI_IMAGE_RATES",
    "MEDIA_RATES_CEILING",
    "OPENAI_MEDIA_RATES",
    "CalibrationStats",
    "Calibrator",
    "Estimate",
    "ImageTokenRates",
    "MediaTokenRates",
    "Prices",
    "TokenCount",
    "cost_usd",
    "count_chat_tokens",
    "count_embedding_inputs",
    "estimate_embedding",
    "estimate_request",
    "get_encoding",
    "image_tokens",
    "with_counted_input",
]
