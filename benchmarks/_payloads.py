"""What every benchmark sends and receives: one config, one request, one canned answer.

The answer has the shape the OpenAI API (and guardedllm's FakeProvider) sends: a
``chat.completion`` body with usage details, or a ``chat.completion.chunk`` stream ending in a
usage chunk and ``data: [DONE]``. The raw baselines POST the same JSON body guardedllm builds, so
the comparison counts only what guardedllm adds on top of sending it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from guardedllm import AsyncClient, Client, Registry
from guardedllm.registry import RecordConfig

# Read by the clients from the `environ=` mapping, never from os.environ.
API_KEY_ENV = "BENCH_OPENAI_KEY"
API_KEY = "sk-bench-0123456789abcdef"
ENVIRON = {API_KEY_ENV: API_KEY}

MODEL_ID = "gpt-4o-mini-2024-07-18"

# A host that never resolves: the MockTransport benchmarks must not reach any network.
MOCK_BASE_URL = "http://mock.invalid/v1"

CONFIG = """
[defaults]
deadline_s = 30
max_attempts = 2
timeout_s = 10

[providers.openai]
kind = "openai"
base_url = "{base_url}"
api_key_env = "{key_env}"

[models.gpt-4o-mini]
provider = "openai"
model = "{model}"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
cached_input_usd_per_mtok = 0.075

[aliases]
chat = "gpt-4o-mini"
"""

# A short support-chat exchange: the per-call overhead, not the token count, is what is measured
# (bench_estimate.py measures estimation on a long conversation).
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a concise support agent for a parcel service."},
    {"role": "user", "content": "Where is my parcel? The tracking number is 1Z999AA10123456784."},
]
MAX_TOKENS = 200

# What guardedllm sends for MESSAGES (kind "openai": max_tokens goes as max_completion_tokens);
# the raw baselines send the same body.
REQUEST_BODY: dict[str, Any] = {
    "model": MODEL_ID,
    "messages": MESSAGES,
    "max_completion_tokens": MAX_TOKENS,
}
REQUEST_HEADERS = {"authorization": f"Bearer {API_KEY}"}

_USAGE: dict[str, Any] = {
    "prompt_tokens": 38,
    "completion_tokens": 24,
    "total_tokens": 62,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

ANSWER = "Your parcel left the Leeds depot at 07:40 and should arrive today before 18:00."


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


COMPLETION_BODY = _dumps(
    {
        "id": "chatcmpl-bench00000000000000000001",
        "object": "chat.completion",
        "created": 1_732_000_000,
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": ANSWER,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    }
)
COMPLETION_HEADERS = {"content-type": "application/json", "x-request-id": "req_bench"}
STREAM_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_bench"}


def stream_events(pieces: int) -> list[bytes]:
    """The SSE events of a streamed answer with ``pieces`` content chunks, as OpenAI sends
    them with ``include_usage``: a role chunk, the pieces, a finish chunk, a usage chunk, and
    ``[DONE]`` (so ``pieces + 4`` events)."""
    words = (ANSWER + " ") * (pieces // 8 + 1)
    split = words.split(" ")

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        value = {
            "id": "chatcmpl-bench00000000000000000001",
            "object": "chat.completion.chunk",
            "created": 1_732_000_000,
            "model": MODEL_ID,
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
            "choices": choices,
            "usage": usage,
        }
        return b"data: " + _dumps(value) + b"\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

    events = [chunk(delta({"role": "assistant", "content": "", "refusal": None}))]
    events += [chunk(delta({"content": split[i] + " "})) for i in range(pieces)]
    events.append(chunk(delta({}, "stop")))
    events.append(chunk([], _USAGE))
    events.append(b"data: [DONE]\n\n")
    return events


def registry(base_url: str = MOCK_BASE_URL) -> Registry:
    text = CONFIG.format(base_url=base_url, key_env=API_KEY_ENV, model=MODEL_ID)
    return Registry.from_toml_text(text, source="benchmarks")


# --------------------------------------------------------------------------- mock transports
#
# One handler per answer kind. A stream's body is served one SSE event per read, as a network
# delivers it, so the per-chunk work of both sides is exercised.


def completion_handler(request: httpx.Request) -> httpx.Response:
    request.read()
    return httpx.Response(200, content=COMPLETION_BODY, headers=COMPLETION_HEADERS)


def stream_handler(pieces: int, *, is_async: bool) -> Callable[[httpx.Request], httpx.Response]:
    events = stream_events(pieces)

    def sync_body() -> Iterator[bytes]:
        yield from events

    async def async_body() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        content = async_body() if is_async else sync_body()
        return httpx.Response(200, content=content, headers=STREAM_HEADERS)

    return handle


def guarded_client(transport: httpx.BaseTransport, record: RecordConfig | None = None) -> Client:
    """A ``Client`` with every guard on (estimate, cost, deadline, retries), sending through
    ``transport``; closing it closes the transport. ``record``: recording its calls too."""
    return Client(registry(), transport=transport, environ=ENVIRON, record=record)


def guarded_async_client(
    transport: httpx.AsyncBaseTransport, record: RecordConfig | None = None
) -> AsyncClient:
    return AsyncClient(registry(), transport=transport, environ=ENVIRON, record=record)


# --------------------------------------------------------------------------- the soak server
#
# The soak benchmark's server is a FakeProvider answering each of these model ids the same way
# every time (``serve.py --kind soak``), so a client chooses a fault by the deployment it calls.
# The waits the faults ask for are a few milliseconds: the run's time goes to calls, not sleeps.

SOAK_OK = "soak-ok"
SOAK_FAULTS: dict[str, dict[str, Any]] = {
    "soak-5xx": {"status": 503, "retry_after_ms": 2},
    "soak-429": {"status": 429, "retry_after_ms": 2},
    "soak-drop": {"drop": True},
    "soak-malformed": {"body": b'{"id": "chatcmpl-soak", "choices": [{"index": 0, "mess'},
    "soak-slow": {"latency": 0.05},  # cancelled by the caller long before it answers
    "soak-long-stream": {"chunks": 32, "chunk_delay": 0.001},  # closed after its first chunk
}

SOAK_MODEL = """
[models.{name}]
provider = "openai"
model = "{name}"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
"""


def soak_registry(base_url: str) -> Registry:
    """One deployment per soak model id, all on the server at ``base_url``."""
    head = CONFIG.split("[models.", maxsplit=1)[0].format(base_url=base_url, key_env=API_KEY_ENV)
    models = "".join(SOAK_MODEL.format(name=name) for name in (SOAK_OK, *SOAK_FAULTS))
    return Registry.from_toml_text(head + models, source="benchmarks-soak")
