"""Per-call CPU of a non-streaming call with every guard on, next to raw httpx.

Each candidate sends the same chat completion through an ``httpx.MockTransport`` that answers
the same canned ``chat.completion`` body, so no network and no server is involved and what is
left is the client's own work:

- ``raw httpx.Client``: ``client.post(url, json=body, headers=auth).json()``, the least any
  client can do (the baseline);
- ``guardedllm Client``: ``client.chat.completions.create(...)`` (alias resolution, request
  validation, pre-flight token and cost estimate, deadline, attempt record, typed response);
- the same with the traffic recorder on (``[record]``, content "none", to a temporary
  directory), recording every call and one call in ten: the record built on the call's thread,
  and the writer thread's JSON and file writes, which the harness waits for and charges to it;
- one more tokenizer count of the same request (cl100k_base, with tiktoken): what recording a
  count for every other tokenizer of a registry would add per tokenizer (record/_recorder.py);
- the openai SDK, if importable, over its own HTTP library's MockTransport (openai 3.x uses
  ``httpx2``; its raw ``httpx2.Client`` is measured too, so the SDK's own share is visible);
- LiteLLM, if importable: ``litellm.completion(model="openai/...", client=...)`` handed an
  openai client on that same MockTransport (LiteLLM's OpenAI provider sends through the client
  it is given), so it does everything it does for a real call except the network;
- the same for the async clients, in one asyncio loop.

Run alone:  python benchmarks/bench_overhead.py [--quick]
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from _harness import (
    Mode,
    Section,
    Target,
    interleave,
    interleave_async,
    run_alone,
    run_async,
)
from _payloads import (
    MAX_TOKENS,
    MESSAGES,
    MOCK_BASE_URL,
    MODEL_ID,
    REQUEST_BODY,
    REQUEST_HEADERS,
    completion_handler,
    guarded_async_client,
    guarded_client,
)
from _peers import litellm_peer, openai_peer

from guardedllm import AsyncClient, Client
from guardedllm.estimate import count_chat_tokens, get_encoding
from guardedllm.registry import RecordConfig

URL = MOCK_BASE_URL + "/chat/completions"
LITELLM = "litellm.completion (client=openai.OpenAI)"
LITELLM_ASYNC = "litellm.acompletion (client=openai.AsyncOpenAI)"
GOAL = 2.0  # per-call CPU with all guards <= 2x raw httpx through the same mock transport
RECORDING = "guardedllm Client, recording on"
RECORDING_ASYNC = "guardedllm AsyncClient, recording on"
SAMPLED = "guardedllm Client, recording 1 call in 10"
SAMPLED_ASYNC = "guardedllm AsyncClient, recording 1 call in 10"
ONE_MORE_COUNT = "one more tokenizer count (cl100k_base)"


def _record_config(sample: float = 1.0) -> tuple[RecordConfig, Callable[[], None]]:
    """``sample`` of the calls recorded, shapes only, to a directory removed by the returned
    cleanup."""
    directory = tempfile.mkdtemp(prefix="guardedllm-bench-record-")
    config = RecordConfig(path=directory, sample=sample)
    return config, lambda: shutil.rmtree(directory, ignore_errors=True)


def _sync_candidates(notes: list[str]) -> tuple[dict[str, Callable[[], object]], list[Any]]:
    raw = httpx.Client(transport=httpx.MockTransport(completion_handler))
    guarded = guarded_client(httpx.MockTransport(completion_handler))
    record, remove_records = _record_config()
    recording = guarded_client(httpx.MockTransport(completion_handler), record=record)
    tenth, remove_tenth = _record_config(sample=0.1)
    sampling = guarded_client(httpx.MockTransport(completion_handler), record=tenth)
    cl100k = get_encoding("cl100k_base")
    candidates: dict[str, Callable[[], object]] = {
        "raw httpx.Client": lambda: raw.post(
            URL, json=REQUEST_BODY, headers=REQUEST_HEADERS
        ).json(),
        "guardedllm Client": lambda: guarded.chat.completions.create(
            model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
        ),
        RECORDING: _Recording(
            lambda: recording.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
            ),
            recording,
        ),
        SAMPLED: _Recording(
            lambda: sampling.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
            ),
            sampling,
        ),
        ONE_MORE_COUNT: lambda: count_chat_tokens(MESSAGES, encoding=cl100k),
    }
    closers: list[Any] = [raw, guarded, recording, sampling]
    closers += [_Cleanup(remove_records), _Cleanup(remove_tenth)]
    peer, why = openai_peer()
    notes.append(f"peer: {why}")
    if peer is not None:
        sdk = peer.client(MOCK_BASE_URL, peer.mock_transport())
        closers.append(sdk)
        candidates["openai.OpenAI"] = lambda: sdk.chat.completions.create(
            model=MODEL_ID, messages=MESSAGES, max_completion_tokens=MAX_TOKENS
        )
        if peer.http is not httpx:
            raw_peer = peer.http.Client(transport=peer.mock_transport())
            closers.append(raw_peer)
            candidates[f"raw {peer.http_name}.Client"] = lambda: raw_peer.post(
                URL, json=REQUEST_BODY, headers=REQUEST_HEADERS
            ).json()
    lite, why = litellm_peer()
    notes.append(f"peer: {why}")
    if lite is not None and peer is None:
        notes.append("litellm skipped in process: it needs an openai client to mock the transport")
    elif lite is not None and peer is not None:
        # Its own openai client: LiteLLM sets max_retries on the client it is handed.
        lite_sdk = peer.client(MOCK_BASE_URL, peer.mock_transport())
        closers.append(lite_sdk)
        completion = lite.litellm.completion
        candidates[LITELLM] = lambda: completion(
            model=lite.model,
            messages=MESSAGES,
            max_completion_tokens=MAX_TOKENS,
            client=lite_sdk,
        )
    return candidates, closers


class _Recording:
    """A recording client's call; ``flush`` (run by the harness after each sample) has the
    writer write what the sample's calls queued, so its CPU is charged to this candidate."""

    def __init__(self, call: Callable[[], Any], client: Client | AsyncClient) -> None:
        self._call = call
        self._recorder = client.recorder

    def __call__(self) -> Any:
        return self._call()

    def flush(self) -> None:
        assert self._recorder is not None
        self._recorder.flush()


class _Cleanup:
    """A closer (sync or async) that runs ``run``: removes the records' directory."""

    def __init__(self, run: Callable[[], None]) -> None:
        self.close = run

    async def aclose(self) -> None:
        self.close()


def measure_sync(mode: Mode, section: Section) -> tuple[float, float]:
    candidates, closers = _sync_candidates(section.notes)
    try:
        samples = interleave(candidates, mode)
    finally:
        for closer in closers:
            closer.close()
    baseline = samples["raw httpx.Client"]
    for name, values in samples.items():
        section.add(
            name, values, "us/call", scale=1e6, baseline=baseline, baseline_label="raw httpx.Client"
        )
    return section.ratio("guardedllm Client"), section.ratio(RECORDING)


async def _measure_async(mode: Mode, section: Section) -> tuple[float, float]:
    raw = httpx.AsyncClient(transport=httpx.MockTransport(completion_handler))
    guarded = guarded_async_client(httpx.MockTransport(completion_handler))
    record, remove_records = _record_config()
    recording = guarded_async_client(httpx.MockTransport(completion_handler), record=record)
    tenth, remove_tenth = _record_config(sample=0.1)
    sampling = guarded_async_client(httpx.MockTransport(completion_handler), record=tenth)

    async def raw_call() -> object:
        response = await raw.post(URL, json=REQUEST_BODY, headers=REQUEST_HEADERS)
        return response.json()

    candidates: dict[str, Callable[[], Awaitable[object]]] = {
        "raw httpx.AsyncClient": raw_call,
        "guardedllm AsyncClient": lambda: guarded.chat.completions.create(
            model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
        ),
        RECORDING_ASYNC: _Recording(
            lambda: recording.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
            ),
            recording,
        ),
        SAMPLED_ASYNC: _Recording(
            lambda: sampling.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
            ),
            sampling,
        ),
    }
    closers: list[Any] = [raw, guarded, recording, sampling]
    closers += [_Cleanup(remove_records), _Cleanup(remove_tenth)]
    peer, _ = openai_peer()
    if peer is not None:
        http_client = peer.http.AsyncClient(transport=peer.mock_transport())
        sdk = peer.async_client(MOCK_BASE_URL, http_client)
        closers.append(sdk)
        candidates["openai.AsyncOpenAI"] = lambda: sdk.chat.completions.create(
            model=MODEL_ID, messages=MESSAGES, max_completion_tokens=MAX_TOKENS
        )
    lite, _ = litellm_peer()
    if lite is not None and peer is not None:
        lite_http = peer.http.AsyncClient(transport=peer.mock_transport())
        lite_sdk = peer.async_client(MOCK_BASE_URL, lite_http)
        closers.append(lite_sdk)
        acompletion = lite.litellm.acompletion
        candidates[LITELLM_ASYNC] = lambda: acompletion(
            model=lite.model,
            messages=MESSAGES,
            max_completion_tokens=MAX_TOKENS,
            client=lite_sdk,
        )
    try:
        samples = await interleave_async(candidates, mode)
    finally:
        for closer in closers:
            await (closer.aclose() if hasattr(closer, "aclose") else closer.close())
    baseline = samples["raw httpx.AsyncClient"]
    for name, values in samples.items():
        section.add(
            name,
            values,
            "us/call",
            scale=1e6,
            baseline=baseline,
            baseline_label="raw httpx.AsyncClient",
        )
    return section.ratio("guardedllm AsyncClient"), section.ratio(RECORDING_ASYNC)


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    sync = Section("1a. Per-call CPU, non-streaming, sync (MockTransport)")
    sync_ratio, sync_recording = measure_sync(mode, sync)
    asynchronous = Section("1b. Per-call CPU, non-streaming, asyncio (MockTransport)")
    async_ratio, async_recording = run_async(
        lambda: _measure_async(mode, asynchronous), timeout_s=300
    )
    targets = [
        Target(
            "per-call CPU, guardedllm Client vs raw httpx.Client",
            sync_ratio,
            GOAL,
            higher_is_better=False,
            basis="same MockTransport, same body",
        ),
        Target(
            "per-call CPU, guardedllm AsyncClient vs raw httpx.AsyncClient",
            async_ratio,
            GOAL,
            higher_is_better=False,
            basis="same MockTransport, same body",
        ),
        Target(
            "per-call CPU, guardedllm Client recording every call vs raw httpx.Client",
            sync_recording,
            GOAL,
            higher_is_better=False,
            basis="same MockTransport, same body; the writer thread's CPU included",
        ),
        Target(
            "per-call CPU, guardedllm AsyncClient recording every call vs raw httpx.AsyncClient",
            async_recording,
            GOAL,
            higher_is_better=False,
            basis="same MockTransport, same body; the writer thread's CPU included",
        ),
    ]
    return [sync, asynchronous], targets


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
