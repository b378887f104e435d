"""guardedllm: call large language models behind guards.

A drop-in, OpenAI-shaped client over OpenAI, Anthropic, Gemini and OpenAI-compatible APIs, with
a validated model registry, pre-flight token and cost estimates, routing and fallback, retries
within one deadline, and typed errors. Importing it does no work: no network, no file parsing.
"""

import logging

from guardedllm import errors
from guardedllm._version import __version__
from guardedllm.aclient import AsyncClient, AsyncStream
from guardedllm.client import Client, Stream
from guardedllm.errors import GuardedLLMError
from guardedllm.estimate import Estimate
from guardedllm.policy import Policy, policy_scope
from guardedllm.registry import Registry
from guardedllm.types import (
    ChatCompletion,
    ChatCompletionChunk,
    CreateEmbeddingResponse,
    GuardInfo,
    Usage,
)

# A library adds no handler of its own but this one: without it, Python's last-resort handler
# prints the guards' warnings (a breaker opening) to stderr in an application that configured no
# logging. Configure the "guardedllm" logger to see them.
logging.getLogger("guardedllm").addHandler(logging.NullHandler())

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Client",
    "CreateEmbeddingResponse",
    "Estimate",
    "GuardInfo",
    "GuardedLLMError",
    "Policy",
    "Registry",
    "Stream",
    "Usage",
    "__version__",
    "errors",
    "policy_scope",
]
